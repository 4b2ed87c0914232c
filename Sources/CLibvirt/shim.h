#ifndef VMDRIVER_CLIBVIRT_SHIM_H
#define VMDRIVER_CLIBVIRT_SHIM_H
#include <libvirt/libvirt.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>
#include <stdlib.h>
#include <string.h>

/* libvirt's default authentication callbacks. A function, so Swift does not see a mutable global. */
static inline virConnectAuthPtr vmdriver_default_auth(void) { return virConnectAuthPtrDefault; }

/* Credentials given by the caller (VixHost_Connect's userName/password, PrlSrv_Login's), answered
 * to libvirt's auth callback; only during virConnectOpenAuth, so they may live on the stack. */
typedef struct {
    const char *username;
    const char *password;
} vmdriver_credentials;

static inline int vmdriver_credentials_callback(virConnectCredentialPtr cred, unsigned int ncred, void *cbdata) {
    const vmdriver_credentials *given = (const vmdriver_credentials *)cbdata;
    for (unsigned int i = 0; i < ncred; i++) {
        const char *value = NULL;
        switch (cred[i].type) {
        case VIR_CRED_AUTHNAME:
        case VIR_CRED_USERNAME: value = given->username; break;
        case VIR_CRED_PASSPHRASE: value = given->password; break;
        default: return -1;
        }
        if (value == NULL) return -1;
        cred[i].result = strdup(value);
        if (cred[i].result == NULL) return -1;
        cred[i].resultlen = (unsigned int)strlen(value);
    }
    return 0;
}

static inline virConnectPtr vmdriver_open_with_credentials(const char *uri, const char *username, const char *password,
                                                           unsigned int flags) {
    int types[] = {VIR_CRED_AUTHNAME, VIR_CRED_USERNAME, VIR_CRED_PASSPHRASE};
    vmdriver_credentials given = {username, password};
    virConnectAuth auth = {types, sizeof(types) / sizeof(types[0]), vmdriver_credentials_callback, &given};
    return virConnectOpenAuth(uri, &auth, flags);
}
#endif
