// How bytes reach the text. The engine issues one naturally aligned store of
// `granule` bytes per call; a writer must turn that into ONE store the other
// cores observe atomically (the protocol's safety depends on it).
#pragma once

#include <cstdint>
#include <memory>

namespace lp::linux_platform {

class TextWriter {
public:
  virtual ~TextWriter() = default;
  virtual const char *name() const = 0;
  // Returns 0 or a negative LP_E* code.
  virtual int write(uintptr_t addr, const uint8_t *src, uint32_t granule) = 0;
  // Ends the current write window (called before every sync). 0 or LP_E*.
  virtual int finish() { return 0; }
};

// Makes each touched page RWX (never RW: other threads are executing it) for the
// duration of a protocol phase, stores directly, and restores R-X before the sync.
std::unique_ptr<TextWriter> make_mprotect_writer();

// pwrite() to /proc/self/mem: the kernel writes through FOLL_FORCE, so the text
// mapping never becomes writable in this process (W^X holds throughout).
// Returns nullptr and sets *err when /proc/self/mem cannot be opened.
std::unique_ptr<TextWriter> make_procmem_writer(int *err);

// One store of 1, 2 or 4 bytes (used by the mprotect writer and by tests).
void store_granule(uintptr_t addr, const uint8_t *src, uint32_t granule);

} // namespace lp::linux_platform
