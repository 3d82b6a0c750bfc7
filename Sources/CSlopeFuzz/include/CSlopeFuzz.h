// libFuzzer's driver, called from slope-fuzz's main in fuzzing builds (-sanitize=fuzzer links libFuzzer, whose
// own main is not used: SwiftPM's executable entry point comes first). Only declared; other builds never call it.
#ifndef SLOPE_CSLOPEFUZZ_H
#define SLOPE_CSLOPEFUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
