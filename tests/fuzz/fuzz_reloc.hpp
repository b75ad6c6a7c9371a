#pragma once
#include <stddef.h>
#include <stdint.h>
// One fuzz input; aborts on a violated invariant.
int lp_fuzz_one(const uint8_t *data, size_t size);
