/* VMDriver's Parallels SDK API: the SDK's loader. VMDriver is linked, not loaded, so loading
 * succeeds at once and unloading does nothing; programs that call them run unchanged. */
#ifndef VMDRIVER_SDKWRAP_H
#define VMDRIVER_SDKWRAP_H
#include "Parallels.h"
#ifdef __cplusplus
extern "C" {
#endif
PRL_RESULT SdkWrap_Load(PRL_CONST_STR name);
PRL_RESULT SdkWrap_Unload(void);
PRL_BOOL SdkWrap_IsLoaded(void);
#ifdef __cplusplus
}
static inline PRL_RESULT SdkWrap_Load(PRL_CONST_STR name, bool) { return SdkWrap_Load(name); }
#endif
#endif
