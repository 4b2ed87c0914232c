/*
 * The VIX calls C declares variadic, which Swift cannot define: each walks its
 * (property ID, pointer) pairs and asks VMDriver's Swift side for one property at a time.
 * The Swift entry points are declared here, not in a header: this target cannot depend on
 * the Swift one that implements them (that would be a cycle); the library links both.
 */
#include <stdarg.h>
#include "vix.h"

extern VixError vmdriver_vix_job_wait(VixHandle job);
extern VixError vmdriver_vix_job_property(VixHandle job, int propertyID, void *out);
extern VixError vmdriver_vix_property(VixHandle handle, int propertyID, void *out);

static VixError each_property(VixHandle handle, VixPropertyID first, va_list ap,
                              VixError (*get)(VixHandle, int, void *)) {
    for (int id = first; id != VIX_PROPERTY_NONE; id = va_arg(ap, int)) {
        void *out = va_arg(ap, void *);
        VixError err = get(handle, id, out);
        if (err != VIX_OK) return err;
    }
    return VIX_OK;
}

VixError VixJob_Wait(VixHandle jobHandle, VixPropertyID firstPropertyID, ...) {
    VixError err = vmdriver_vix_job_wait(jobHandle);
    if (err != VIX_OK) return err;
    va_list ap;
    va_start(ap, firstPropertyID);
    err = each_property(jobHandle, firstPropertyID, ap, vmdriver_vix_job_property);
    va_end(ap);
    return err;
}

VixError Vix_GetProperties(VixHandle handle, VixPropertyID firstPropertyID, ...) {
    va_list ap;
    va_start(ap, firstPropertyID);
    VixError err = each_property(handle, firstPropertyID, ap, vmdriver_vix_property);
    va_end(ap);
    return err;
}
