/* Functions without entry sleds (lptrace probes their first instruction). */
__attribute__((noipa)) long wl_plain_mul(long a, long b) { return a * b; }
__attribute__((noipa)) long wl_plain_square(long a) { return wl_plain_mul(a, a); }
