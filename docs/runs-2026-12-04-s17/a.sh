#!/bin/bash
USE= exec "$(dirname "$0")/wrap.sh" "$@"
