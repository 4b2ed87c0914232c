/*
 * VMDriver's CIM migration API: DMTF's CIM_VirtualSystemMigrationService methods
 * (MigrateVirtualSystemToHost, CheckVirtualSystemIsMigratableToHost) and CIM_ConcreteJob, as C
 * calls on KVM/QEMU through libvirt. Return values are the methods' (DSP1081): 0 completed,
 * 1 not supported, 2 failed, 3 timeout, 4 invalid parameter, 5 invalid state, 6 incompatible
 * parameters, 4096 job started. Setting data are embedded instances in CIM-XML or MOF text.
 */
#ifndef VMDRIVER_CIM_MIGRATION_H
#define VMDRIVER_CIM_MIGRATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct CIM_Object *CIM_Handle;

enum {
    CIM_RETURN_COMPLETED = 0,
    CIM_RETURN_NOT_SUPPORTED = 1,
    CIM_RETURN_FAILED = 2,
    CIM_RETURN_TIMEOUT = 3,
    CIM_RETURN_INVALID_PARAMETER = 4,
    CIM_RETURN_INVALID_STATE = 5,
    CIM_RETURN_INCOMPATIBLE_PARAMETERS = 6,
    CIM_RETURN_JOB_STARTED = 4096,
    /* RequestStateChange's own */
    CIM_RETURN_INVALID_STATE_TRANSITION = 4097
};

/* CIM_ConcreteJob.JobState */
enum {
    CIM_JOBSTATE_NEW = 2,
    CIM_JOBSTATE_STARTING = 3,
    CIM_JOBSTATE_RUNNING = 4,
    CIM_JOBSTATE_SUSPENDED = 5,
    CIM_JOBSTATE_SHUTTING_DOWN = 6,
    CIM_JOBSTATE_COMPLETED = 7,
    CIM_JOBSTATE_TERMINATED = 8,
    CIM_JOBSTATE_KILLED = 9,
    CIM_JOBSTATE_EXCEPTION = 10
};

/* CIM_ConcreteJob.RequestStateChange's RequestedState */
enum {
    CIM_REQUESTEDSTATE_START = 2,
    CIM_REQUESTEDSTATE_SUSPEND = 3,
    CIM_REQUESTEDSTATE_TERMINATE = 4,
    CIM_REQUESTEDSTATE_KILL = 5
};

/* CIM_VirtualSystemMigrationSettingData.MigrationType and TransportType */
enum {
    CIM_MIGRATIONTYPE_UNKNOWN = 0,
    CIM_MIGRATIONTYPE_OTHER = 1,
    CIM_MIGRATIONTYPE_LIVE = 2,
    CIM_MIGRATIONTYPE_RESUME = 3,
    CIM_MIGRATIONTYPE_RESTART = 4
};
enum {
    CIM_TRANSPORTTYPE_SSH = 2,
    CIM_TRANSPORTTYPE_TLS = 3,
    CIM_TRANSPORTTYPE_TLS_STRICT = 4,
    CIM_TRANSPORTTYPE_TCP = 5
};

uint32_t CIM_Connect(const char *libvirtURI, CIM_Handle *service); /* NULL: qemu:///system */
uint32_t CIM_MigrateVirtualSystemToHost(CIM_Handle service, const char *computerSystem,
    const char *destinationHost, const char *migrationSettingData, const char *newSystemSettingData,
    const char *const *newResourceSettingData, size_t newResourceSettingDataCount, CIM_Handle *job);
uint32_t CIM_CheckVirtualSystemIsMigratableToHost(CIM_Handle service, const char *computerSystem,
    const char *destinationHost, const char *migrationSettingData, const char *newSystemSettingData,
    const char *const *newResourceSettingData, size_t newResourceSettingDataCount, bool *isMigratable);
uint32_t CIM_GetMigrationCapabilities(CIM_Handle service, char **capabilitiesInstance); /* CIM-XML, free() it */
uint32_t CIM_ConcreteJob_GetState(CIM_Handle job, uint16_t *jobState, uint16_t *percentComplete, uint16_t *errorCode);
const char *CIM_ConcreteJob_GetErrorDescription(CIM_Handle job);
uint32_t CIM_ConcreteJob_Wait(CIM_Handle job, uint32_t timeoutMilliseconds);
uint32_t CIM_ConcreteJob_RequestStateChange(CIM_Handle job, uint16_t requestedState);
void CIM_Release(CIM_Handle handle);

/* VMDriver's own: the last error's text of a call that returned neither 0 nor 4096, on this
 * thread (valid until the next call on it). */
const char *CIM_GetLastErrorDescription(void);

#ifdef __cplusplus
}
#endif
#endif
