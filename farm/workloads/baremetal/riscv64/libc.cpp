// The few libc symbols GCC may emit calls to even with -ffreestanding (struct
// copies and clears). Built with -fno-tree-loop-distribute-patterns so these loops
// are not turned back into calls to themselves.
#include <stddef.h>
#include <stdint.h>

extern "C" {
void *memset(void *d, int c, size_t n) {
  unsigned char *p = static_cast<unsigned char *>(d);
  while (n--) *p++ = (unsigned char)c;
  return d;
}
void *memcpy(void *d, const void *s, size_t n) {
  unsigned char *p = static_cast<unsigned char *>(d);
  const unsigned char *q = static_cast<const unsigned char *>(s);
  while (n--) *p++ = *q++;
  return d;
}
void *memmove(void *d, const void *s, size_t n) {
  unsigned char *p = static_cast<unsigned char *>(d);
  const unsigned char *q = static_cast<const unsigned char *>(s);
  if (p < q) {
    while (n--) *p++ = *q++;
  } else {
    while (n--) p[n] = q[n];
  }
  return d;
}
int memcmp(const void *a, const void *b, size_t n) {
  const unsigned char *p = static_cast<const unsigned char *>(a);
  const unsigned char *q = static_cast<const unsigned char *>(b);
  for (; n; --n, ++p, ++q)
    if (*p != *q) return *p < *q ? -1 : 1;
  return 0;
}
}
