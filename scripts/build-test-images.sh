#!/usr/bin/env bash
# Builds the PostgreSQL image the container tests use where no image registry is reachable:
# Debian's own postgresql-15 packages, debootstrapped into a directory and imported, then a start
# command that initialises a cluster trusting every host on first start (as the official image
# does with POSTGRES_HOST_AUTH_METHOD=trust) and keeps it across `docker restart`.
#
# The tag is a digest of this script, which is all that decides the image's contents: a changed
# script builds a new image, an unchanged one is skipped when its tag exists. Prints the tag on
# the last line of stdout (for ORBSTORE_TEST_POSTGRES_IMAGE). Needs root, docker and debootstrap.
set -euo pipefail

digest=$(sha256sum "$0" | cut -c1-12)
tag="orbstore-test-postgres:15-$digest"

if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "$tag exists: nothing to build" >&2
    echo "$tag"
    exit 0
fi

# The machine's own Debian mirror (a sandbox may reach only that one).
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}

work=$(mktemp -d /tmp/orbstore-test-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
root="$work/root"
echo "debootstrap bookworm with postgresql-15 from $mirror" >&2
debootstrap --variant=minbase --include=postgresql-15 bookworm "$root" "$mirror" >&2
# The package's own cluster and the downloaded packages are not needed in the image.
rm -rf "$root"/var/lib/postgresql/15 "$root"/etc/postgresql/15 "$root"/var/cache/apt/archives/*.deb
base="orbstore-test-postgres-rootfs:$digest"
tar -C "$root" -c . | docker import - "$base" >&2

# `docker import` cannot set a stop signal, so the rest is a build on top of the imported root.
mkdir "$work/context"
cat >"$work/context/orbstore-postgres" <<'START'
#!/bin/sh
set -e
data=/var/lib/postgresql/data
if [ ! -s "$data/PG_VERSION" ]; then
    initdb -D "$data" -A trust -U postgres >/dev/null
    # A test server, reachable only through the bridge network and a port published on loopback.
    echo "host all all all trust" >>"$data/pg_hba.conf"
fi
exec postgres -D "$data" -c listen_addresses='*' -c unix_socket_directories=/tmp "$@"
START
chmod 755 "$work/context/orbstore-postgres"
cat >"$work/context/Dockerfile" <<DOCKERFILE
FROM $base
COPY orbstore-postgres /usr/local/bin/orbstore-postgres
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/bin:/usr/bin:/bin
LABEL org.orbstore.test-image=postgres
USER postgres
EXPOSE 5432
# SIGINT is PostgreSQL's fast shutdown (SIGTERM's smart shutdown waits for every client to leave),
# as in the official image.
STOPSIGNAL SIGINT
CMD ["/usr/local/bin/orbstore-postgres"]
DOCKERFILE
docker build -q -t "$tag" "$work/context" >&2
docker rmi "$base" >/dev/null 2>&1 || true
echo "$tag"
