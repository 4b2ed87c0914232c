/* Eight threads use the VIX API at once on one URI, each with its own handles, for the C API's
 * thread-safety test: connect, open a VM, read its properties, release, disconnect; 25 rounds.
 *
 *   vix_threads URI VM
 *
 * Prints "ok N" with N the rounds that read the VM's name back right; exits 0 if all did. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <vix.h>

static const char *uri, *vm_name;

static void *worker(void *arg) {
    long good = 0;
    for (int round = 0; round < 25; round++) {
        VixHandle host = VIX_INVALID_HANDLE, vm = VIX_INVALID_HANDLE;
        VixHandle job = VixHost_Connect(VIX_API_VERSION, VIX_SERVICEPROVIDER_DEFAULT, uri, 0, NULL, NULL, 0,
                                        VIX_INVALID_HANDLE, NULL, NULL);
        VixError err = VixJob_Wait(job, VIX_PROPERTY_JOB_RESULT_HANDLE, &host, VIX_PROPERTY_NONE);
        Vix_ReleaseHandle(job);
        if (VIX_FAILED(err)) continue;
        job = VixVM_Open(host, vm_name, NULL, NULL);
        err = VixJob_Wait(job, VIX_PROPERTY_JOB_RESULT_HANDLE, &vm, VIX_PROPERTY_NONE);
        Vix_ReleaseHandle(job);
        if (VIX_SUCCEEDED(err)) {
            char *name = NULL;
            int power = 0, cpus = 0;
            err = Vix_GetProperties(vm, VMDRIVER_PROPERTY_VM_NAME, &name, VIX_PROPERTY_VM_POWER_STATE, &power,
                                    VIX_PROPERTY_VM_NUM_VCPUS, &cpus, VIX_PROPERTY_NONE);
            if (VIX_SUCCEEDED(err) && name && strcmp(name, vm_name) == 0 && power != 0 && cpus > 0) good++;
            Vix_FreeBuffer(name);
        }
        Vix_ReleaseHandle(vm);
        VixHost_Disconnect(host);
    }
    return (void *)good;
}

int main(int argc, char **argv) {
    if (argc != 3) return 64;
    uri = argv[1];
    vm_name = argv[2];
    pthread_t threads[8];
    for (int i = 0; i < 8; i++) pthread_create(&threads[i], NULL, worker, NULL);
    long total = 0;
    for (int i = 0; i < 8; i++) {
        void *good;
        pthread_join(threads[i], &good);
        total += (long)good;
    }
    printf("ok %ld\n", total);
    return total == 8 * 25 ? 0 : 1;
}
