#!/usr/bin/env bash
# `make deploy-test`: the container image and the Kubernetes manifests, run for real on
# this machine with podman (docs/deployment.md, "Tested end to end").
#
#  1. a Debian 12 base image from debootstrap (no registry needed; kept for later runs,
#     DEPLOY_TEST_NEW_BASE=1 makes a new one), then `make image` on it and a Redis image;
#  2. the instance's signing identity, made once by the image (`avatarbot generate`);
#  3. deploy/podman (deploy/base plus podman's differences) rendered and started with
#     `podman kube play` on a network of its own;
#  4. tests/deploy_scenario.py drives it from outside (CLI, web chat over HTTP), kills and
#     scales workers, and checks that every job is answered exactly once;
#  5. `podman kube down`, then nothing of the deployment may be left.
# A trap removes everything (pods, the Redis volume, the network, the work directory)
# however the script ends. Needs root (debootstrap), podman, runc and debootstrap.
set -euo pipefail
cd "$(dirname "$0")/../.."

export CONTAINERS_CONF="$PWD/deploy/podman/containers.conf"
PY="${PY:-.venv/bin/python}"
BASE_IMAGE=localhost/debian-bookworm:min
IMAGE=localhost/avatarbot:latest
REDIS_IMAGE=localhost/avatarbot-test-redis:latest
NETWORK=avatarbot-deploy-test
WORK=/var/tmp/avatarbot-deploy-test  # deploy/podman/pod-volumes.yaml mounts $WORK/identity
PODS='^(redis|bot|worker|worker-scaled)-pod-[0-9]+$'
CA_BUNDLE="${CA_BUNDLE:-${PIP_CERT:-}}"  # pip in the build trusts what pip here trusts

step() { printf '\n== %s [%ds]\n' "$1" "$SECONDS"; }
fail() { printf 'deploy-test: %s\n' "$1" >&2; exit 2; }

missing=()
for tool in podman runc debootstrap; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
    fail "missing ${missing[*]}. On Debian/Ubuntu: sudo apt-get install podman runc debootstrap"
fi
[ "$(id -u)" -eq 0 ] || fail "run as root (debootstrap builds the base image; podman runs rootful)"
for port in 16379 18080; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        fail "port $port is in use; the test publishes Redis on 16379 and the bot on 18080"
    fi
done

# podman's complaint that it cannot use systemd timers for healthchecks (the scenario runs
# the probes itself with `podman healthcheck run`).
quiet() { grep -v -e 'systemd connection' -e 'connect to syslog' || true; }

deployed_pods() {
    podman pod ps --format '{{.Name}}' | grep -E "$PODS" || true
}

# Everything a run creates. Also run first: a run killed outright (SIGKILL) leaves its
# pods behind, and no other run is live (the ports above were free).
remove_deployment() {
    for file in "$WORK/scaled.yaml" "$WORK/deploy.yaml"; do
        [ -f "$file" ] && podman kube down "$file" >/dev/null 2>&1 || true
    done
    for pod in $(deployed_pods); do podman pod rm -f "$pod" >/dev/null 2>&1 || true; done
    podman volume rm -f redis-data >/dev/null 2>&1 || true
    podman network rm -f "$NETWORK" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    remove_deployment
    [ "$status" -eq 0 ] && echo "deploy-test passed in ${SECONDS}s" || echo "deploy-test FAILED"
    exit "$status"
}
remove_deployment
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$WORK"

step "base image $BASE_IMAGE"
if [ -n "${DEPLOY_TEST_NEW_BASE:-}" ] || ! podman image exists "$BASE_IMAGE"; then
    debootstrap --variant=minbase bookworm "$WORK/rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$WORK/debootstrap.log" \
        || { tail -20 "$WORK/debootstrap.log"; fail "debootstrap failed"; }
    tar -C "$WORK/rootfs" -c . | podman import - "$BASE_IMAGE" >/dev/null
    rm -rf "$WORK/rootfs"
else
    echo "kept from an earlier run (DEPLOY_TEST_NEW_BASE=1 makes a new one)"
fi

step "make image BASE=$BASE_IMAGE"
start=$SECONDS
make --no-print-directory image ENGINE=podman BASE="$BASE_IMAGE" IMAGE="$IMAGE" CA_BUNDLE="$CA_BUNDLE"
echo "make image took $((SECONDS - start))s"
podman build --format docker --build-arg BASE="$BASE_IMAGE" -t "$REDIS_IMAGE" \
    -f deploy/podman/redis.Containerfile deploy/podman >"$WORK/redis-build.log" \
    || { tail -20 "$WORK/redis-build.log"; fail "building the Redis image failed"; }

step "image checks"
[ "$(podman image inspect "$IMAGE" --format '{{.Config.User}}')" = "10001:10001" ] || fail "the image does not run as 10001"
podman run --rm --no-healthcheck "$IMAGE" sh -c '
    for tool in gcc cc c++ make cmake pip pip3; do
        ! command -v $tool >/dev/null || { echo "left in the image: $tool"; exit 1; }
    done
    for dir in /src /root/.cache /var/lib/apt/lists/*_Packages; do
        ! [ -e "$dir" ] || { echo "left in the image: $dir"; exit 1; }
    done' || fail "build leftovers in the image"
echo "runs as 10001:10001; no compiler, make, pip, pip cache, apt lists or source tree"

step "signing identity (avatarbot-identity in Kubernetes)"
install -d -o 10001 -g 10001 "$WORK/identity"
podman run --rm --no-healthcheck -v "$WORK/identity:/data" -v "$PWD/tests/data/astronaut.jpg:/selfie.jpg:ro" \
    "$IMAGE" avatarbot generate /selfie.jpg --style sketch -o /tmp/first.png >/dev/null
rm "$WORK/identity/c2pa/root.key"  # the CA key stays with the operator, never in the cluster
ls -R "$WORK/identity"

step "podman kube play deploy/podman"
volumes_before="$(podman volume ls -q | sort | xargs)"
"$PY" -m tests.kustomize deploy/podman >"$WORK/deploy.yaml"
podman network create "$NETWORK" >/dev/null
podman kube play --network "$NETWORK" "$WORK/deploy.yaml" >/dev/null 2> >(quiet >&2)
deployed_pods | xargs echo "pods:"

step "scenario"
"$PY" -m tests.deploy_scenario "$WORK"

step "podman kube down"
podman kube down "$WORK/scaled.yaml" >/dev/null 2> >(quiet >&2)
podman kube down "$WORK/deploy.yaml" >/dev/null 2> >(quiet >&2)
left="$(deployed_pods)$(podman ps -a --format '{{.Names}}' | grep -E '^(redis|bot|worker|worker-scaled)-pod-' || true)"
[ -z "$left" ] || fail "left running after kube down: $left"
podman volume rm redis-data >/dev/null  # a PVC outlives its pods, as in Kubernetes
[ "$(podman volume ls -q | sort | xargs)" = "$volumes_before" ] || fail "volumes left: $(podman volume ls -q | xargs)"
echo "no pod, container or volume of the deployment is left"
