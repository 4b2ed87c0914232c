/* The VixVM_Open example of VMware's VIX reference (../shared/seeds), wrapped in main() with the
 * abort: label it jumps to; only the .vmx path differs (the test puts its own in for @VMX@). */
#include <stdio.h>
#include <vix.h>

int main(void) {
VixError err = VIX_OK;
VixHandle hostHandle = VIX_INVALID_HANDLE;
VixHandle jobHandle = VIX_INVALID_HANDLE;
VixHandle vmHandle = VIX_INVALID_HANDLE;
// Connect to the local host:
jobHandle = VixHost_Connect(VIX_API_VERSION,
VIX_SERVICEPROVIDER_VMWARE_WORKSTATION,
NULL, // hostName
0, // hostPort
NULL, // userName
NULL, // password
0, // options
VIX_INVALID_HANDLE, // propertyListHandle
NULL, // callbackProc
NULL); // clientData
err = VixJob_Wait(jobHandle,
VIX_PROPERTY_JOB_RESULT_HANDLE,
&hostHandle,
VIX_PROPERTY_NONE);
if (VIX_OK != err) {
// Handle the error...
goto abort;
}
// Release handle when done:
Vix_ReleaseHandle(jobHandle);
// Open the virtual machine:
jobHandle = VixVM_Open(hostHandle,
"@VMX@",
NULL, // callbackProc
NULL); // clientData
err = VixJob_Wait(jobHandle,
VIX_PROPERTY_JOB_RESULT_HANDLE,
&vmHandle,
VIX_PROPERTY_NONE);
if (VIX_OK != err) {
// Handle the error...
goto abort;
}
// Release handle when done:
Vix_ReleaseHandle(jobHandle);
jobHandle = VIX_INVALID_HANDLE;
abort:
    printf("err=%llu %s\n", (unsigned long long)err, Vix_GetErrorText(err, NULL));
    Vix_ReleaseHandle(jobHandle);
    Vix_ReleaseHandle(vmHandle);
    VixHost_Disconnect(hostHandle);
    return VIX_FAILED(err) ? 1 : 0;
}
