/* consumer.preload: the main program. Plain C, knows nothing of libpatch,
 * built with -fpatchable-function-entry=5 so every function has an entry sled.
 * Calls f() 1000 times and g() 7 times across 2 threads, prints the sums. */
#include <pthread.h>
#include <stdio.h>

#if defined(__GNUC__) && !defined(__clang__)
#define APP_FN __attribute__((noinline, noipa))
#else
#define APP_FN __attribute__((noinline))
#endif

APP_FN long f(long x) { return 2 * x + 1; }
APP_FN long g(long x) { return x * x; }

struct work { long nf, ng, base, sum; };

static void *run(void *arg) {
  struct work *w = (struct work *)arg;
  long i;
  for (i = 0; i < w->nf; ++i) w->sum += f(w->base + i);
  for (i = 0; i < w->ng; ++i) w->sum += g(w->base + i);
  return NULL;
}

int main(void) {
  struct work a = {600, 4, 0, 0}, b = {400, 3, 1000, 0};
  pthread_t t;
  if (pthread_create(&t, NULL, run, &a) != 0) return 2;
  run(&b);
  pthread_join(t, NULL);
  printf("app: thread sums %ld %ld\n", a.sum, b.sum);
  return 0;
}
