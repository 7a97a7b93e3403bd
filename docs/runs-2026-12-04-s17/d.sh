#!/bin/bash
USE=falloc exec "$(dirname "$0")/wrap.sh" "$@"
