/* A CIM client of VMDriver's cim_migration.h, for the C API tests:
 *
 *   cim_migrate SOURCE_URI COMPUTER_SYSTEM DESTINATION_HOST migrate|cancel [BANDWIDTH_MIBPS]
 *
 * Prints one line per fact the test reads: the method's return value, each state the job
 * went through, the final JobState, PercentComplete and ErrorCode. Exits 0 when the calls
 * returned what the C API documents, whatever the move's outcome (the test judges that). */
#include <cim_migration.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Warm (MigrationType 3, resume) over TCP (TransportType 5), as WBEM clients write it. */
static const char *settings_format =
    "<INSTANCE CLASSNAME=\"CIM_VirtualSystemMigrationSettingData\">"
    "<PROPERTY NAME=\"MigrationType\" TYPE=\"uint16\"><VALUE>3</VALUE></PROPERTY>"
    "<PROPERTY NAME=\"TransportType\" TYPE=\"uint16\"><VALUE>5</VALUE></PROPERTY>"
    "<PROPERTY NAME=\"Priority\" TYPE=\"uint16\"><VALUE>0</VALUE></PROPERTY>"
    "<PROPERTY NAME=\"Bandwidth\" TYPE=\"uint16\"><VALUE>%s</VALUE></PROPERTY>"
    "</INSTANCE>";

int main(int argc, char **argv) {
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: %s SOURCE_URI COMPUTER_SYSTEM DESTINATION_HOST migrate|cancel [BANDWIDTH]\n", argv[0]);
        return 64;
    }
    char settings[1024];
    snprintf(settings, sizeof settings, settings_format, argc == 6 ? argv[5] : "0");
    CIM_Handle service = NULL, job = NULL;
    uint32_t rc = CIM_Connect(argv[1], &service);
    printf("connect=%u\n", rc);
    if (rc != 0) return 1;

    char *caps = NULL;
    rc = CIM_GetMigrationCapabilities(service, &caps);
    printf("capabilities=%u %s\n", rc, caps ? caps : "");
    free(caps);

    bool migratable = false;
    rc = CIM_CheckVirtualSystemIsMigratableToHost(service, argv[2], argv[3], settings, NULL, NULL, 0, &migratable);
    printf("check=%u migratable=%d\n", rc, migratable);

    rc = CIM_MigrateVirtualSystemToHost(service, argv[2], argv[3], settings, NULL, NULL, 0, &job);
    printf("migrate=%u\n", rc);
    if (rc != CIM_RETURN_JOB_STARTED) {
        const char *why = CIM_GetLastErrorDescription();
        printf("error=%s\n", why ? why : "");
        CIM_Release(service);
        return 0;
    }
    uint16_t state = 0, percent = 0, code = 0;
    if (strcmp(argv[4], "cancel") == 0) {
        /* Terminate once the job runs (a second in: the move is under way). */
        usleep(1000 * 1000);
        CIM_ConcreteJob_GetState(job, &state, &percent, &code);
        printf("before-terminate=%u\n", state);
        rc = CIM_ConcreteJob_RequestStateChange(job, CIM_REQUESTEDSTATE_TERMINATE);
        printf("terminate=%u\n", rc);
    } else {
        rc = CIM_ConcreteJob_Wait(job, 600000);
        printf("wait=%u\n", rc);
    }
    CIM_ConcreteJob_GetState(job, &state, &percent, &code);
    printf("state=%u percent=%u code=%u\n", state, percent, code);
    const char *description = CIM_ConcreteJob_GetErrorDescription(job);
    printf("description=%s\n", description ? description : "");
    CIM_Release(job);
    CIM_Release(service);
    return 0;
}
