#!/bin/sh
# The image's entrypoint: run the command (`mesh run <service>`) as the container's main process.
#
# Each replica needs an instance id of its own. `mesh` makes it from the host name and the pid,
# which replicas sharing the host's network (network_mode: host) also share; the container's id
# tells them apart, and it is what `docker ps` shows.
if [ -z "${MESH_INSTANCE_ID:-}" ]; then
    container=$(sed -n 's|.*/containers/\([0-9a-f]\{12\}\)[0-9a-f]*/hostname .*|\1|p' /proc/self/mountinfo | head -n 1)
    if [ -n "$container" ]; then
        MESH_INSTANCE_ID=$container
        export MESH_INSTANCE_ID
    fi
fi
exec "$@"
