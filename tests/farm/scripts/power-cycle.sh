#!/bin/sh
# Fake power switch for farm tests: records the call and "repairs" the board.
echo "power-cycle board=$FARM_BOARD job=$FARM_JOB_ID reason=$FARM_REASON" >> "$POWER_LOG"
[ -n "$FAKE_SSH_DOWN" ] && rm -f "$FAKE_SSH_DOWN"
exit 0
