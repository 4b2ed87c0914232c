/* A Parallels SDK client of VMDriver, as the SDK's guide writes them: init, create a server,
 * log in, list the VMs, find one by name, PrlVm_MigrateEx, wait, read the job's return code.
 *
 *   prl_migrate SOURCE VM TARGET_HOST low|normal|high|bad
 *
 * SOURCE is what PrlSrv_Login gets as its host (a libvirt URI works). Prints
 * "retcode=0x... NAME" for the migration job; exits 0 when every SDK call before it worked. */
#include <ParallelsVirtualizationSDK/Parallels.h>
#include <SdkWrap.h>
#include <stdio.h>
#include <string.h>

static int check(PRL_HANDLE job, const char *what) {
    PRL_RESULT rc = PrlJob_Wait(job, 600000);
    PRL_RESULT ret = PRL_ERR_FAILURE;
    if (PRL_SUCCEEDED(rc)) PrlJob_GetRetCode(job, &ret);
    if (PRL_FAILED(ret)) printf("%s failed: %s\n", what, prl_result_to_string(ret));
    return PRL_SUCCEEDED(ret);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s SOURCE VM TARGET_HOST low|normal|high|bad\n", argv[0]);
        return 64;
    }
    if (PRL_FAILED(SdkWrap_Load("libprl_sdk.so"))) return 1;
    if (PRL_FAILED(PrlApi_InitEx(PARALLELS_API_VER, PAM_SERVER, 0, 0))) return 1;
    PRL_HANDLE server = PRL_INVALID_HANDLE, job, result = PRL_INVALID_HANDLE, vm = PRL_INVALID_HANDLE;
    PrlSrv_Create(&server);
    job = PrlSrv_Login(server, argv[1], NULL, NULL, NULL, 0, 0, PSL_LOW_SECURITY);
    if (!check(job, "login")) return 1;
    PrlHandle_Free(job);

    job = PrlSrv_GetVmList(server);
    if (!check(job, "list")) return 1;
    PrlJob_GetResult(job, &result);
    PrlHandle_Free(job);
    PRL_UINT32 count = 0;
    PrlResult_GetParamsCount(result, &count);
    for (PRL_UINT32 i = 0; i < count; i++) {
        PRL_HANDLE candidate;
        char name[256], uuid[64];
        PRL_UINT32 length = sizeof name, uuidLength = sizeof uuid;
        PrlResult_GetParamByIndex(result, i, &candidate);
        PrlVmCfg_GetName(candidate, name, &length);
        PrlVmCfg_GetUuid(candidate, uuid, &uuidLength);
        if (strcmp(name, argv[2]) == 0) {
            vm = candidate;
            printf("found %s %s\n", name, uuid);
        } else {
            PrlHandle_Free(candidate);
        }
    }
    PrlHandle_Free(result);
    if (vm == PRL_INVALID_HANDLE) {
        printf("no VM %s\n", argv[2]);
        return 1;
    }

    PRL_UINT32 level = strcmp(argv[4], "normal") == 0 ? PVMSL_NORMAL_SECURITY
                     : strcmp(argv[4], "high") == 0   ? PVMSL_HIGH_SECURITY
                     : strcmp(argv[4], "bad") == 0    ? (PVMSL_NORMAL_SECURITY | PVMSL_HIGH_SECURITY)
                                                      : PVMSL_LOW_SECURITY;
    job = PrlVm_MigrateEx(vm, argv[3], 0, "", "", PVMT_HOT_MIGRATION | level, 0, PRL_TRUE);
    PrlJob_Wait(job, 600000);
    PRL_RESULT ret = PRL_ERR_FAILURE;
    PrlJob_GetRetCode(job, &ret);
    PRL_UINT32 progress = 0;
    PrlJob_GetProgress(job, &progress);
    printf("retcode=0x%08x %s progress=%u\n", (unsigned)ret, prl_result_to_string(ret), progress);
    PrlHandle_Free(job);
    PrlHandle_Free(vm);
    job = PrlSrv_Logoff(server);
    check(job, "logoff");
    PrlHandle_Free(job);
    PrlHandle_Free(server);
    PrlApi_Deinit();
    SdkWrap_Unload();
    return 0;
}
