#!/bin/bash
USE=dd exec "$(dirname "$0")/wrap.sh" "$@"
