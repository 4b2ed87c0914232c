/* VMDriver's Parallels SDK API: the SDK's basic types (names and sizes as in the open-source
 * Parallels/Virtuozzo SDK, so its programs compile unchanged). */
#ifndef VMDRIVER_PRLTYPES_H
#define VMDRIVER_PRLTYPES_H

typedef char PRL_CHAR;
typedef PRL_CHAR *PRL_CHAR_PTR;
typedef PRL_CHAR_PTR PRL_STR;
typedef const char *PRL_CONST_STR;
typedef PRL_CONST_STR *PRL_CONST_STR_PTR;
typedef unsigned char PRL_UINT8;
typedef signed char PRL_INT8;
typedef unsigned short PRL_UINT16;
typedef short PRL_INT16;
typedef unsigned int PRL_UINT32;
typedef PRL_UINT32 *PRL_UINT32_PTR;
typedef const PRL_UINT32 *PRL_CONST_UINT32_PTR;
typedef int PRL_INT32;
typedef PRL_INT32 *PRL_INT32_PTR;
typedef unsigned long long PRL_UINT64;
typedef PRL_UINT64 *PRL_UINT64_PTR;
typedef long long PRL_INT64;
typedef PRL_INT64 *PRL_INT64_PTR;
typedef unsigned int PRL_BOOL;
typedef PRL_BOOL *PRL_BOOL_PTR;
#define PRL_TRUE (1)
#define PRL_FALSE (0)
typedef void PRL_VOID;
typedef PRL_VOID *PRL_VOID_PTR;
typedef const PRL_VOID *PRL_CONST_VOID_PTR;
typedef PRL_VOID_PTR *PRL_VOID_PTR_PTR;
typedef unsigned int PRL_SIZE;
typedef double PRL_DOUBLE;
typedef int *PRL_HANDLE;
typedef PRL_HANDLE *PRL_HANDLE_PTR;
typedef const PRL_HANDLE *PRL_CONST_HANDLE_PTR;
#define PRL_NULL ((PRL_VOID_PTR)0)
#define PRL_INVALID_HANDLE (0)
typedef int PRL_RESULT;
typedef PRL_RESULT *PRL_RESULT_PTR;

#define PRL_CALL
#ifdef __cplusplus
#define PRL_EXTERN extern "C"
#else
#define PRL_EXTERN
#endif
#define PRL_DLLEXPORT __attribute__((visibility("default")))
#define PRL_METHOD(func) PRL_EXTERN PRL_DLLEXPORT PRL_RESULT PRL_CALL func
#define PRL_ASYNC_METHOD(func) PRL_EXTERN PRL_DLLEXPORT PRL_HANDLE PRL_CALL func

#define TO_PARALLELS_API_VER(majorV, minorV) ((PRL_UINT32)(((PRL_UINT32)(majorV)) << 16 | ((PRL_UINT16)(minorV))))
#define PARALLELS_API_VER_1 TO_PARALLELS_API_VER(0, 1)
#define PARALLELS_API_VER_2 TO_PARALLELS_API_VER(2, 0)
#define PARALLELS_API_VER_3 TO_PARALLELS_API_VER(3, 0)
#define PARALLELS_API_VER_7 TO_PARALLELS_API_VER(7, 0)
#define PARALLELS_API_VER PARALLELS_API_VER_7
#endif
