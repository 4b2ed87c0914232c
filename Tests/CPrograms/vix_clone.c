/* The VixVM_Clone example of VMware's VIX reference (../shared/seeds), wrapped in main(); only
 * the two .vmx paths differ (the test puts its own in for @VMX@ and @CLONE_VMX@). */
#include <stdio.h>
#include <vix.h>

int main(void) {
VixError err = VIX_OK; VixHandle hostHandle = VIX_INVALID_HANDLE; VixHandle jobHandle = VIX_INVALID_HANDLE; VixHandle vmHandle = VIX_INVALID_HANDLE; VixHandle cloneVMHandle = VIX_INVALID_HANDLE; jobHandle = VixHost_Connect(VIX_API_VERSION, VIX_SERVICEPROVIDER_VMWARE_WORKSTATION, NULL, // hostName
 0, // hostPort
 NULL, // userName
 NULL, // password
 0, // options
 VIX_INVALID_HANDLE, // propertyListHandle
 NULL, // callbackProc
 NULL); // clientData
 err = VixJob_Wait(jobHandle, VIX_PROPERTY_JOB_RESULT_HANDLE, &hostHandle, VIX_PROPERTY_NONE); if (VIX_FAILED(err)) { // Handle the error...
 goto abort; } // Release handle after use.
 Vix_ReleaseHandle(jobHandle); jobHandle = VixVM_Open(hostHandle, "@VMX@", NULL, // callbackProc
 NULL); // clientData
 err = VixJob_Wait(jobHandle, VIX_PROPERTY_JOB_RESULT_HANDLE, &vmHandle, VIX_PROPERTY_NONE); if (VIX_FAILED(err)) { // Handle the error...
 goto abort; } Vix_ReleaseHandle(jobHandle); // Create a clone of this virtual machine.
 jobHandle = VixVM_Clone(vmHandle, VIX_INVALID_HANDLE, // snapshotHandle
 VIX_CLONETYPE_LINKED, // cloneType
 "@CLONE_VMX@", // destConfigPathName
 0, //options,
 VIX_INVALID_HANDLE, // propertyListHandle
 NULL, // callbackProc
 NULL); // clientData
 err = VixJob_Wait(jobHandle, VIX_PROPERTY_JOB_RESULT_HANDLE, &cloneVMHandle, VIX_PROPERTY_NONE); if (VIX_FAILED(err)) { // Handle the error...
 goto abort; } Vix_ReleaseHandle(jobHandle); // You can use the new virtual machine as you would any other virtual machine.
 // For example, to power on the new clone:
 jobHandle = VixVM_PowerOn(cloneVMHandle, VIX_VMPOWEROP_LAUNCH_GUI, VIX_INVALID_HANDLE, NULL, NULL); err = VixJob_Wait(jobHandle, VIX_PROPERTY_NONE); if (VIX_FAILED(err)) { // Handle the error...
 goto abort; } abort: Vix_ReleaseHandle(jobHandle); Vix_ReleaseHandle(vmHandle); Vix_ReleaseHandle(cloneVMHandle); VixHost_Disconnect(hostHandle);
    printf("err=%llu %s\n", (unsigned long long)err, Vix_GetErrorText(err, NULL));
    return VIX_FAILED(err) ? 1 : 0;
}
