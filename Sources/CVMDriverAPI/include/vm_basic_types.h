/* VMDriver: the basic types VIX programs use (uint64, int32, Bool), as vix.h expects them. */
#ifndef VMDRIVER_VM_BASIC_TYPES_H
#define VMDRIVER_VM_BASIC_TYPES_H
#include <stdint.h>
#include <stddef.h>

typedef uint64_t uint64;
typedef int64_t int64;
typedef uint32_t uint32;
typedef int32_t int32;
typedef uint16_t uint16;
typedef int16_t int16;
typedef uint8_t uint8;
typedef int8_t int8;
#ifndef VMDRIVER_HAVE_BOOL
#define VMDRIVER_HAVE_BOOL
typedef char Bool;
#endif
#ifndef TRUE
#define TRUE 1
#endif
#ifndef FALSE
#define FALSE 0
#endif
#endif
