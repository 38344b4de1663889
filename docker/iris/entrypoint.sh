#!/bin/sh
# IRIS community entrypoint wrapper: hand $IRIS_PASSWORD to iris-main as a password file, so the
# predefined accounts (_SYSTEM, SuperUser, ...) get the password from the environment, never from
# the image or the compose file. iris-main deletes the file once it has applied it.
set -eu
: "${IRIS_PASSWORD:?IRIS_PASSWORD is not set (see .env.example)}"
umask 077
printf '%s' "$IRIS_PASSWORD" > /tmp/ct-iris-password
unset IRIS_PASSWORD
exec /tini -- /iris-main --password-file /tmp/ct-iris-password "$@"
