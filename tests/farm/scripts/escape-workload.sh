#!/bin/sh
# Stand-in for patch-stress in farmctl's terminal-safety tests
# (tests/farm/test_ctl_cli.cpp): ignores the patch-stress flags, prints
# terminal control sequences (CSI clear screen, an OSC title change ended by
# BEL, a CR that would hide text, a C1 CSI encoded as UTF-8) in its output,
# and fails, so that `farmctl results` shows the output's tail too.
printf 'evil: \033[2J\033]0;pwned\007 cr\rhidden c1:\302\23331m end\n'
printf '{"workload":"patch-stress","calls":1,"hits":1,"batches":1,"verdict":"fail"}\n'
exit 1
