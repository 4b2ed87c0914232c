/* VMDriver's Parallels SDK API: the SDK's umbrella header. */
#ifndef VMDRIVER_PARALLELS_H
#define VMDRIVER_PARALLELS_H
#include "PrlTypes.h"
#include "PrlErrors.h"
#include "PrlEnums.h"
#include "PrlApi.h"
#endif
