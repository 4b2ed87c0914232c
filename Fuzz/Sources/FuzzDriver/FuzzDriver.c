// SwiftPM links an executable target with main defined as <target>_main (so tests can link
// it too); libFuzzer brings its own main. vmfuzz_main hands over to libFuzzer's driver, which
// then calls LLVMFuzzerTestOneInput (Sources/vmfuzz/Entry.swift) for every input.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int vmfuzz_main(int argc, char **argv) {
    return LLVMFuzzerRunDriver(&argc, &argv, LLVMFuzzerTestOneInput);
}
