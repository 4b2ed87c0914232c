/*
 * VMDriver's VIX API: the entry points, types and values of VMware's VIX C API, implemented on
 * KVM/QEMU through libvirt. Names and numbers are VMware's, so programs written against VIX
 * compile unchanged; what each call does on KVM is in VMDriver's README ("Using VMDriver from C").
 */
#ifndef _VIX_H_
#define _VIX_H_

#ifdef __cplusplus
extern "C" {
#endif

#include "vm_basic_types.h"

typedef int VixHandle;
enum { VIX_INVALID_HANDLE = 0 };

typedef int VixHandleType;
enum {
   VIX_HANDLETYPE_NONE = 0,
   VIX_HANDLETYPE_HOST = 2,
   VIX_HANDLETYPE_VM = 3,
   VIX_HANDLETYPE_NETWORK = 5,
   VIX_HANDLETYPE_JOB = 6,
   VIX_HANDLETYPE_SNAPSHOT = 7,
   VIX_HANDLETYPE_PROPERTY_LIST = 9,
   VIX_HANDLETYPE_METADATA_CONTAINER = 11
};

typedef uint64 VixError;
#define VIX_ERROR_CODE(err) ((err) & 0xFFFF)
#define VIX_SUCCEEDED(err) (VIX_OK == (err))
#define VIX_FAILED(err) (VIX_OK != (err))

enum {
   VIX_OK = 0,
   VIX_E_FAIL = 1,
   VIX_E_OUT_OF_MEMORY = 2,
   VIX_E_INVALID_ARG = 3,
   VIX_E_FILE_NOT_FOUND = 4,
   VIX_E_OBJECT_IS_BUSY = 5,
   VIX_E_NOT_SUPPORTED = 6,
   VIX_E_FILE_ERROR = 7,
   VIX_E_DISK_FULL = 8,
   VIX_E_INCORRECT_FILE_TYPE = 9,
   VIX_E_CANCELLED = 10,
   VIX_E_FILE_READ_ONLY = 11,
   VIX_E_FILE_ALREADY_EXISTS = 12,
   VIX_E_FILE_ACCESS_ERROR = 13,
   VIX_E_REQUIRES_LARGE_FILES = 14,
   VIX_E_FILE_ALREADY_LOCKED = 15,
   VIX_E_VMDB = 16,
   VIX_E_NOT_SUPPORTED_ON_REMOTE_OBJECT = 20,
   VIX_E_FILE_TOO_BIG = 21,
   VIX_E_FILE_NAME_INVALID = 22,
   VIX_E_ALREADY_EXISTS = 23,
   VIX_E_BUFFER_TOOSMALL = 24,
   VIX_E_OBJECT_NOT_FOUND = 25,
   VIX_E_HOST_NOT_CONNECTED = 26,
   VIX_E_INVALID_UTF8_STRING = 27,
   VIX_E_OPERATION_ALREADY_IN_PROGRESS = 31,
   VIX_E_UNFINISHED_JOB = 29,
   VIX_E_NEED_KEY = 30,
   VIX_E_LICENSE = 32,
   VIX_E_INVALID_HANDLE = 1000,
   VIX_E_NOT_SUPPORTED_ON_HANDLE_TYPE = 1001,
   VIX_E_TOO_MANY_HANDLES = 1002,
   VIX_E_NOT_FOUND = 2000,
   VIX_E_TYPE_MISMATCH = 2001,
   VIX_E_INVALID_XML = 2002,
   VIX_E_TIMEOUT_WAITING_FOR_TOOLS = 3000,
   VIX_E_UNRECOGNIZED_COMMAND = 3001,
   VIX_E_OP_NOT_SUPPORTED_ON_GUEST = 3003,
   VIX_E_PROGRAM_NOT_STARTED = 3004,
   VIX_E_CANNOT_START_READ_ONLY_VM = 3005,
   VIX_E_VM_NOT_RUNNING = 3006,
   VIX_E_VM_IS_RUNNING = 3007,
   VIX_E_CANNOT_CONNECT_TO_VM = 3008,
   VIX_E_POWEROP_SCRIPTS_NOT_AVAILABLE = 3009,
   VIX_E_NO_GUEST_OS_INSTALLED = 3010,
   VIX_E_VM_INSUFFICIENT_HOST_MEMORY = 3011,
   VIX_E_SUSPEND_ERROR = 3012,
   VIX_E_VM_NOT_ENOUGH_CPUS = 3013,
   VIX_E_HOST_USER_PERMISSIONS = 3014,
   VIX_E_GUEST_USER_PERMISSIONS = 3015,
   VIX_E_TOOLS_NOT_RUNNING = 3016,
   VIX_E_CANNOT_POWER_ON_VM = 3041,
   VIX_E_VM_NOT_FOUND = 4000,
   VIX_E_NOT_SUPPORTED_FOR_VM_VERSION = 4001,
   VIX_E_CANNOT_READ_VM_CONFIG = 4002,
   VIX_E_TEMPLATE_VM = 4003,
   VIX_E_VM_ALREADY_LOADED = 4004,
   VIX_E_VM_ALREADY_UP_TO_DATE = 4006,
   VIX_E_UNRECOGNIZED_PROPERTY = 6000,
   VIX_E_INVALID_PROPERTY_VALUE = 6001,
   VIX_E_READ_ONLY_PROPERTY = 6002,
   VIX_E_MISSING_REQUIRED_PROPERTY = 6003,
   VIX_E_INVALID_SERIALIZED_DATA = 6004,
   VIX_E_BAD_VM_INDEX = 8000,
   VIX_E_SNAPSHOT_INVAL = 13000,
   VIX_E_SNAPSHOT_NOTFOUND = 13003,
   VIX_E_SNAPSHOT_EXISTS = 13004,
   VIX_E_SNAPSHOT_NONUNIQUE_NAME = 13017,
   VIX_E_CANNOT_CONNECT_TO_HOST = 18000,
   VIX_E_NOT_FOR_REMOTE_HOST = 18001,
   VIX_E_INVALID_HOSTNAME_SPECIFICATION = 18002
};

const char *Vix_GetErrorText(VixError err, const char *locale);

typedef int VixPropertyType;
enum {
   VIX_PROPERTYTYPE_ANY = 0,
   VIX_PROPERTYTYPE_INTEGER = 1,
   VIX_PROPERTYTYPE_STRING = 2,
   VIX_PROPERTYTYPE_BOOL = 3,
   VIX_PROPERTYTYPE_HANDLE = 4,
   VIX_PROPERTYTYPE_INT64 = 5,
   VIX_PROPERTYTYPE_BLOB = 6
};

typedef int VixPropertyID;
enum {
   VIX_PROPERTY_NONE = 0,
   VIX_PROPERTY_META_DATA_CONTAINER = 2,
   VIX_PROPERTY_HOST_HOSTTYPE = 50,
   VIX_PROPERTY_HOST_API_VERSION = 51,
   VIX_PROPERTY_VM_NUM_VCPUS = 101,
   VIX_PROPERTY_VM_VMX_PATHNAME = 103,
   VIX_PROPERTY_VM_VMTEAM_PATHNAME = 105,
   VIX_PROPERTY_VM_MEMORY_SIZE = 106,
   VIX_PROPERTY_VM_READ_ONLY = 107,
   VIX_PROPERTY_VM_IN_VMTEAM = 128,
   VIX_PROPERTY_VM_POWER_STATE = 129,
   VIX_PROPERTY_VM_TOOLS_STATE = 152,
   VIX_PROPERTY_VM_IS_RUNNING = 196,
   VIX_PROPERTY_VM_SUPPORTED_FEATURES = 197,
   VIX_PROPERTY_JOB_RESULT_ERROR_CODE = 3000,
   VIX_PROPERTY_JOB_RESULT_VM_IN_GROUP = 3001,
   VIX_PROPERTY_JOB_RESULT_USER_MESSAGE = 3002,
   VIX_PROPERTY_JOB_RESULT_HANDLE = 3010,
   VIX_PROPERTY_JOB_RESULT_ITEM_NAME = 3035,
   VIX_PROPERTY_SNAPSHOT_DISPLAYNAME = 4200,
   VIX_PROPERTY_SNAPSHOT_DESCRIPTION = 4201,
   VIX_PROPERTY_SNAPSHOT_POWERSTATE = 4205,
   /* VMDriver's own (VIX has no property for the VM's name): a string, free with Vix_FreeBuffer. */
   VMDRIVER_PROPERTY_VM_NAME = 0x564D0001,
   /* VMDriver's own: the VM's UUID as text. */
   VMDRIVER_PROPERTY_VM_UUID = 0x564D0002
};

typedef int VixEventType;
enum {
   VIX_EVENTTYPE_JOB_COMPLETED = 2,
   VIX_EVENTTYPE_JOB_PROGRESS = 3,
   VIX_EVENTTYPE_FIND_ITEM = 8,
   VIX_EVENTTYPE_CALLBACK_SIGNALLED = 2
};

typedef void VixEventProc(VixHandle handle, VixEventType eventType, VixHandle moreEventInfo, void *clientData);

void Vix_ReleaseHandle(VixHandle handle);
void Vix_AddRefHandle(VixHandle handle);
VixHandleType Vix_GetHandleType(VixHandle handle);
VixError Vix_GetProperties(VixHandle handle, VixPropertyID firstPropertyID, ...);
VixError Vix_GetPropertyType(VixHandle handle, VixPropertyID propertyID, VixPropertyType *propertyType);
void Vix_FreeBuffer(void *p);

typedef int VixHostOptions;
enum { VIX_HOSTOPTION_USE_EVENT_PUMP = 0x0008 };

typedef int VixServiceProvider;
enum {
   VIX_SERVICEPROVIDER_DEFAULT = 1,
   VIX_SERVICEPROVIDER_VMWARE_SERVER = 2,
   VIX_SERVICEPROVIDER_VMWARE_WORKSTATION = 3,
   VIX_SERVICEPROVIDER_VMWARE_PLAYER = 4,
   VIX_SERVICEPROVIDER_VMWARE_VI_SERVER = 10,
   VIX_SERVICEPROVIDER_VMWARE_WORKSTATION_SHARED = 11
};

enum { VIX_API_VERSION = -1 };

VixHandle VixHost_Connect(int apiVersion, VixServiceProvider hostType, const char *hostName, int hostPort,
                          const char *userName, const char *password, VixHostOptions options,
                          VixHandle propertyListHandle, VixEventProc *callbackProc, void *clientData);
void VixHost_Disconnect(VixHandle hostHandle);
VixHandle VixHost_RegisterVM(VixHandle hostHandle, const char *vmxFilePath, VixEventProc *callbackProc,
                             void *clientData);
VixHandle VixHost_UnregisterVM(VixHandle hostHandle, const char *vmxFilePath, VixEventProc *callbackProc,
                               void *clientData);

typedef int VixPumpEventsOptions;
enum { VIX_PUMPEVENTOPTION_NONE = 0 };
void Vix_PumpEvents(VixHandle hostHandle, VixPumpEventsOptions options);

VixHandle VixVM_Open(VixHandle hostHandle, const char *vmxFilePathName, VixEventProc *callbackProc,
                     void *clientData);

typedef int VixVMPowerOpOptions;
enum {
   VIX_VMPOWEROP_NORMAL = 0,
   VIX_VMPOWEROP_FROM_GUEST = 0x0004,
   VIX_VMPOWEROP_SUPPRESS_SNAPSHOT_POWERON = 0x0080,
   VIX_VMPOWEROP_LAUNCH_GUI = 0x0200,
   VIX_VMPOWEROP_START_VM_PAUSED = 0x1000
};

VixHandle VixVM_PowerOn(VixHandle vmHandle, VixVMPowerOpOptions powerOnOptions, VixHandle propertyListHandle,
                        VixEventProc *callbackProc, void *clientData);
VixHandle VixVM_PowerOff(VixHandle vmHandle, VixVMPowerOpOptions powerOffOptions, VixEventProc *callbackProc,
                         void *clientData);
VixHandle VixVM_Suspend(VixHandle vmHandle, VixVMPowerOpOptions suspendOptions, VixEventProc *callbackProc,
                        void *clientData);
VixHandle VixVM_Pause(VixHandle vmHandle, int options, VixHandle propertyList, VixEventProc *callbackProc,
                      void *clientData);
VixHandle VixVM_Unpause(VixHandle vmHandle, int options, VixHandle propertyList, VixEventProc *callbackProc,
                        void *clientData);

typedef int VixVMDeleteOptions;
enum { VIX_VMDELETE_DISK_FILES = 0x0002 };
VixHandle VixVM_Delete(VixHandle vmHandle, VixVMDeleteOptions deleteOptions, VixEventProc *callbackProc,
                       void *clientData);

typedef int VixPowerState;
enum {
   VIX_POWERSTATE_POWERING_OFF = 0x0001,
   VIX_POWERSTATE_POWERED_OFF = 0x0002,
   VIX_POWERSTATE_POWERING_ON = 0x0004,
   VIX_POWERSTATE_POWERED_ON = 0x0008,
   VIX_POWERSTATE_SUSPENDING = 0x0010,
   VIX_POWERSTATE_SUSPENDED = 0x0020,
   VIX_POWERSTATE_TOOLS_RUNNING = 0x0040,
   VIX_POWERSTATE_RESETTING = 0x0080,
   VIX_POWERSTATE_BLOCKED_ON_MSG = 0x0100,
   VIX_POWERSTATE_PAUSED = 0x0200,
   VIX_POWERSTATE_RESUMING = 0x0800
};

typedef int VixToolsState;
enum {
   VIX_TOOLSSTATE_UNKNOWN = 0x0001,
   VIX_TOOLSSTATE_RUNNING = 0x0002,
   VIX_TOOLSSTATE_NOT_INSTALLED = 0x0004
};

VixError VixVM_GetNumRootSnapshots(VixHandle vmHandle, int *result);
VixError VixVM_GetRootSnapshot(VixHandle vmHandle, int index, VixHandle *snapshotHandle);
VixError VixVM_GetCurrentSnapshot(VixHandle vmHandle, VixHandle *snapshotHandle);
VixError VixVM_GetNamedSnapshot(VixHandle vmHandle, const char *name, VixHandle *snapshotHandle);

typedef int VixRemoveSnapshotOptions;
enum { VIX_SNAPSHOT_REMOVE_CHILDREN = 0x0001 };
VixHandle VixVM_RemoveSnapshot(VixHandle vmHandle, VixHandle snapshotHandle, VixRemoveSnapshotOptions options,
                               VixEventProc *callbackProc, void *clientData);
VixHandle VixVM_RevertToSnapshot(VixHandle vmHandle, VixHandle snapshotHandle, VixVMPowerOpOptions options,
                                 VixHandle propertyListHandle, VixEventProc *callbackProc, void *clientData);

typedef int VixCreateSnapshotOptions;
enum { VIX_SNAPSHOT_INCLUDE_MEMORY = 0x0002 };
VixHandle VixVM_CreateSnapshot(VixHandle vmHandle, const char *name, const char *description,
                               VixCreateSnapshotOptions options, VixHandle propertyListHandle,
                               VixEventProc *callbackProc, void *clientData);

typedef int VixCloneType;
enum {
   VIX_CLONETYPE_FULL = 0,
   VIX_CLONETYPE_LINKED = 1
};
VixHandle VixVM_Clone(VixHandle vmHandle, VixHandle snapshotHandle, VixCloneType cloneType,
                      const char *destConfigPathName, int options, VixHandle propertyListHandle,
                      VixEventProc *callbackProc, void *clientData);

VixError VixJob_Wait(VixHandle jobHandle, VixPropertyID firstPropertyID, ...);
VixError VixJob_CheckCompletion(VixHandle jobHandle, Bool *complete);
VixError VixJob_GetError(VixHandle jobHandle);

#ifdef __cplusplus
}
#endif
#endif
