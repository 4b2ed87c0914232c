/* Snapshots through VIX on one VM (the .vmx at @VMX@), in two runs for the C API's revert test:
 *
 *   vix_snapshot snapshot   open, VixVM_CreateSnapshot "before", VixVM_PowerOn
 *   vix_snapshot revert     open, VixVM_GetNamedSnapshot "before", VixVM_RevertToSnapshot while
 *                           it runs, VixVM_PowerOff, VixVM_RevertToSnapshot, read the power
 *                           state, VixVM_GetNamedSnapshot of a name it lacks, VixVM_PowerOn
 *
 * Prints one "step=error" line per call (VixError values, the power state as VIX_POWERSTATE_*),
 * and exits 0 if it got through every step. */
#include <stdio.h>
#include <string.h>
#include <vix.h>

static VixError wait_job(VixHandle job, VixHandle *result) {
    VixError err = result ? VixJob_Wait(job, VIX_PROPERTY_JOB_RESULT_HANDLE, result, VIX_PROPERTY_NONE)
                          : VixJob_Wait(job, VIX_PROPERTY_NONE);
    Vix_ReleaseHandle(job);
    return err;
}

int main(int argc, char **argv) {
    if (argc != 2) return 64;
    VixHandle host = VIX_INVALID_HANDLE, vm = VIX_INVALID_HANDLE, snapshot = VIX_INVALID_HANDLE;
    VixError err = wait_job(VixHost_Connect(VIX_API_VERSION, VIX_SERVICEPROVIDER_DEFAULT, NULL, 0, NULL, NULL, 0,
                                            VIX_INVALID_HANDLE, NULL, NULL),
                            &host);
    printf("connect=%llu\n", (unsigned long long)err);
    if (VIX_FAILED(err)) return 1;
    err = wait_job(VixVM_Open(host, "@VMX@", NULL, NULL), &vm);
    printf("open=%llu\n", (unsigned long long)err);
    if (VIX_FAILED(err)) return 1;

    if (strcmp(argv[1], "snapshot") == 0) {
        err = wait_job(VixVM_CreateSnapshot(vm, "before", "the boot disk as the .vmx gave it", 0, VIX_INVALID_HANDLE,
                                            NULL, NULL),
                       &snapshot);
        printf("create=%llu\n", (unsigned long long)err);
        if (VIX_FAILED(err)) return 1;
        err = wait_job(VixVM_PowerOn(vm, VIX_VMPOWEROP_NORMAL, VIX_INVALID_HANDLE, NULL, NULL), NULL);
        printf("on=%llu\n", (unsigned long long)err);
    } else {
        err = VixVM_GetNamedSnapshot(vm, "before", &snapshot);
        printf("named=%llu\n", (unsigned long long)err);
        if (VIX_FAILED(err)) return 1;
        VixError running =
            wait_job(VixVM_RevertToSnapshot(vm, snapshot, 0, VIX_INVALID_HANDLE, NULL, NULL), NULL);
        printf("revert-running=%llu\n", (unsigned long long)running);
        err = wait_job(VixVM_PowerOff(vm, VIX_VMPOWEROP_NORMAL, NULL, NULL), NULL);
        printf("off=%llu\n", (unsigned long long)err);
        if (VIX_FAILED(err)) return 1;
        err = wait_job(VixVM_RevertToSnapshot(vm, snapshot, 0, VIX_INVALID_HANDLE, NULL, NULL), NULL);
        printf("revert=%llu\n", (unsigned long long)err);
        if (VIX_FAILED(err)) return 1;
        int power = 0;
        err = Vix_GetProperties(vm, VIX_PROPERTY_VM_POWER_STATE, &power, VIX_PROPERTY_NONE);
        printf("state=%d\n", power);
        VixHandle missing = VIX_INVALID_HANDLE;
        printf("missing=%llu\n", (unsigned long long)VixVM_GetNamedSnapshot(vm, "never-taken", &missing));
        err = wait_job(VixVM_PowerOn(vm, VIX_VMPOWEROP_NORMAL, VIX_INVALID_HANDLE, NULL, NULL), NULL);
        printf("on=%llu\n", (unsigned long long)err);
    }
    Vix_ReleaseHandle(snapshot);
    Vix_ReleaseHandle(vm);
    VixHost_Disconnect(host);
    return VIX_FAILED(err) ? 1 : 0;
}
