#ifndef VMDRIVER_CLIBVIRT_SHIM_H
#define VMDRIVER_CLIBVIRT_SHIM_H
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

/* libvirt's default authentication callbacks. A function, so Swift does not see a mutable global. */
static inline virConnectAuthPtr vmdriver_default_auth(void) { return virConnectAuthPtrDefault; }
#endif
