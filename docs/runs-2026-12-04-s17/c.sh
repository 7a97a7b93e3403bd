#!/bin/bash
USE=dd MODE=direct exec "$(dirname "$0")/wrap.sh" "$@"
