/* VMDriver's Parallels SDK API: the SDK's calls VMDriver implements on KVM/QEMU through libvirt.
 * Asynchronous calls return a PHT_JOB handle; wait with PrlJob_Wait, read PrlJob_GetRetCode. */
#ifndef VMDRIVER_PRLAPI_H
#define VMDRIVER_PRLAPI_H
#include "PrlTypes.h"
#include "PrlErrors.h"
#include "PrlEnums.h"

#ifdef __cplusplus
extern "C" {
#endif

PRL_RESULT PrlApi_Init(PRL_UINT32 version);
PRL_RESULT PrlApi_InitEx(PRL_UINT32 nVersion, PRL_APPLICATION_MODE nAppMode, PRL_UINT32 nFlags, PRL_UINT32 nReserved);
PRL_RESULT PrlApi_Deinit(void);
PRL_RESULT PrlApi_GetVersion(PRL_UINT32_PTR current_version);
PRL_RESULT PrlHandle_AddRef(PRL_HANDLE handle);
PRL_RESULT PrlHandle_Free(PRL_HANDLE handle);
PRL_RESULT PrlHandle_GetType(PRL_HANDLE handle, PRL_HANDLE_TYPE_PTR type);
PRL_RESULT PrlJob_Wait(PRL_HANDLE hJob, PRL_UINT32 msecs);
PRL_HANDLE PrlJob_Cancel(PRL_HANDLE hJob);
PRL_RESULT PrlJob_GetStatus(PRL_HANDLE hJob, PRL_JOB_STATUS_PTR status);
PRL_RESULT PrlJob_GetProgress(PRL_HANDLE hJob, PRL_UINT32_PTR percentage);
PRL_RESULT PrlJob_GetRetCode(PRL_HANDLE hJob, PRL_RESULT_PTR retcode);
PRL_RESULT PrlJob_GetResult(PRL_HANDLE hJob, PRL_HANDLE_PTR handle);
PRL_RESULT PrlResult_GetParamsCount(PRL_HANDLE hResult, PRL_UINT32_PTR pCount);
PRL_RESULT PrlResult_GetParamByIndex(PRL_HANDLE hResult, PRL_UINT32 nIndex, PRL_HANDLE_PTR phParam);
PRL_RESULT PrlResult_GetParam(PRL_HANDLE hResult, PRL_HANDLE_PTR pHandle);
PRL_RESULT PrlDbg_PrlResultToString(PRL_RESULT value, PRL_CONST_STR_PTR result);

static inline const char *prl_result_to_string(PRL_RESULT value) {
    PRL_CONST_STR result = "";
    PrlDbg_PrlResultToString(value, &result);
    return result;
}

PRL_RESULT PrlSrv_Create(PRL_HANDLE_PTR handle);
PRL_HANDLE PrlSrv_Login(PRL_HANDLE hServer, PRL_CONST_STR host, PRL_CONST_STR user, PRL_CONST_STR passwd,
                        PRL_CONST_STR sPrevSessionUuid, PRL_UINT32 port_cmd, PRL_UINT32 timeout,
                        PRL_SECURITY_LEVEL security_level);
PRL_HANDLE PrlSrv_LoginLocal(PRL_HANDLE hServer, PRL_CONST_STR sPrevSessionUuid, PRL_UINT32 port,
                             PRL_SECURITY_LEVEL security_level);
PRL_HANDLE PrlSrv_Logoff(PRL_HANDLE hServer);
PRL_HANDLE PrlSrv_GetVmList(PRL_HANDLE hServer);

PRL_HANDLE PrlVm_MigrateEx(PRL_HANDLE hVm, PRL_CONST_STR target_host, PRL_UINT32 target_port,
                           PRL_CONST_STR target_session_id, PRL_CONST_STR target_home_path, PRL_UINT32 migration_flags,
                           PRL_UINT32 reserved_flags, PRL_BOOL force_operation);
PRL_HANDLE PrlVm_GetState(PRL_HANDLE hVm);
PRL_RESULT PrlVmInfo_GetState(PRL_HANDLE handle, VIRTUAL_MACHINE_STATE_PTR pVmState);
PRL_RESULT PrlVm_GetConfig(PRL_HANDLE hVm, PRL_HANDLE_PTR phVmCfg);
PRL_RESULT PrlVmCfg_GetName(PRL_HANDLE hVmCfg, PRL_STR sVmName, PRL_UINT32_PTR pnVmNameBufLength);
PRL_RESULT PrlVmCfg_GetUuid(PRL_HANDLE hVmCfg, PRL_STR sVmUuid, PRL_UINT32_PTR pnVmUuidBufLength);

#ifdef __cplusplus
}
#endif
#endif
