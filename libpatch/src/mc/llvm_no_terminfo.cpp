// Linked into libpatch.so only (not libpatch.a): LLVM's Support library, which
// libpatch.so carries statically, asks terminfo whether a stream can show
// colours (llvm::sys::Process::FileDescriptorHasColors, reachable from
// raw_ostream). libpatch never prints through LLVM, so instead of loading
// libtinfo into every traced program, the shared library answers "no
// terminal" itself. These definitions are local to libpatch.so (version
// script): they never interpose on a program's own curses.
// Static consumers of libpatch.a link the real -ltinfo (libpatch.pc).
extern "C" {
struct term;
int setupterm(const char *, int, int *errret) {
  if (errret) *errret = 0; // "no such terminal" in terminfo's terms
  return -1;               // ERR
}
term *set_curterm(term *) { return nullptr; }
int del_curterm(term *) { return -1; }
int tigetnum(const char *) { return -2; } // "not a numeric capability"
}
