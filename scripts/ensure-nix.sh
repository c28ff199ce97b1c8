#!/usr/bin/env bash
# Makes a newer Nix (Debian 13's nix-bin, Nix 2.26) available for the tests, next to Debian 12's
# Nix 2.8: a Debian 13 root made with debootstrap, holding nix-bin and openssh-server and its own
# /nix, plus wrappers that run its executables inside it. Idempotent: when the root is complete it
# only prints the wrappers' folder, in well under a second.
#
#   bash scripts/ensure-nix.sh            # make it if needed; last stdout line = the bin folder
#   bash scripts/ensure-nix.sh --print    # print the bin folder, make nothing (exit 1 when absent)
#
# Cache (~350 MB): ${NIX_BUILDERS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nix-builders-dev}/nix-trixie/
#   root/           debootstrap --variant=minbase trixie, then apt-get install nix-bin openssh-server;
#                   root/nix is that Nix's own store (never this machine's /nix)
#   bin/            nix, nix-instantiate, nix-store, nix-build, nix-daemon: each runs the root's
#                   executable of that name (nixBuilders.nixBinDir = this folder)
#   libexec/enter   what the wrappers run in their private mount namespace
#   .complete       written last: without it the folder is a half install and is redone
# The wrappers run the program in a private mount namespace whose root is root/, with this
# machine's /proc, /dev and every top-level folder the root does not provide itself (/tmp, /home,
# /root, /work, /srv, …) and $HOME bind-mounted, so that the paths a caller passes resolve the same.
# Needs: root, debootstrap, util-linux (unshare), network access to Debian's package servers (the
# mirror is read from this machine's apt sources).
set -euo pipefail

SUITE=trixie
PACKAGES=(nix-bin openssh-server)
PROGRAMS=(nix nix-instantiate nix-store nix-build nix-daemon)

cache_root="${NIX_BUILDERS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nix-builders-dev}"
dir="$cache_root/nix-$SUITE"
root="$dir/root"
marker="$dir/.complete"
stamp="suite=$SUITE packages=${PACKAGES[*]} wrappers=1 conf=1"

installed() { [[ -f "$marker" && "$(<"$marker")" == "$stamp" && -x "$dir/bin/nix" && -x "$root/usr/bin/nix" ]]; }

if installed; then
  echo "$dir/bin"
  exit 0
fi
if [[ "${1:-}" == "--print" ]]; then
  echo "Nix from Debian $SUITE is not installed in $dir: run bash scripts/ensure-nix.sh" >&2
  exit 1
fi

log() { echo "ensure-nix: $*" >&2; }
if [[ $(id -u) -ne 0 ]]; then
  log "needs root (debootstrap, chroot and mount namespaces): run it as root or with sudo"
  exit 1
fi
missing=()
command -v debootstrap >/dev/null || missing+=("debootstrap")
command -v unshare >/dev/null || missing+=("util-linux (unshare)")
if ((${#missing[@]})); then
  log "missing: ${missing[*]}. On Debian: apt-get install -y debootstrap util-linux"
  exit 1
fi

# The Debian mirror this machine's apt uses (deb822 .sources files first, then one-line lists);
# the security archive serves no full suite.
mirror_from_sources() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "$f" ]] || continue
    awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { print $i; break } }' "$f"
  done
}
mirror=$(mirror_from_sources | grep -E '^(https?|file)://' | grep -v -- '-security' | head -n 1 || true)
if [[ -z "$mirror" ]]; then
  log "found no Debian mirror in /etc/apt/sources.list or /etc/apt/sources.list.d: add one, or run debootstrap by hand"
  exit 1
fi

mkdir -p "$cache_root"
# One installer at a time; a second caller waits and then finds the install complete.
exec 9>"$cache_root/.nix-$SUITE.lock"
flock 9
if installed; then
  echo "$dir/bin"
  exit 0
fi

start=$SECONDS
log "making a Debian $SUITE root with ${PACKAGES[*]} in $dir (cold: ~40 s, ~350 MB)"
rm -rf "$dir"
mkdir -p "$dir/bin" "$dir/libexec"
if ! debootstrap --variant=minbase "$SUITE" "$root" "$mirror" >"$dir/debootstrap.log" 2>&1; then
  log "debootstrap $SUITE from the mirror of this machine's apt sources failed (no network access to it?); the end of $dir/debootstrap.log:"
  tail -n 5 "$dir/debootstrap.log" >&2
  exit 1
fi
# (debootstrap --include=nix-bin fails: nix-bin depends on a virtual perl package.)
if ! unshare -m --propagation private -- sh -c '
  set -e
  mount -t proc proc "$1/proc"
  mount --rbind /dev "$1/dev"
  shift
  exec chroot "$@"
' sh "$root" "$root" env DEBIAN_FRONTEND=noninteractive PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  sh -c 'apt-get update -q && apt-get install -y -q --no-install-recommends "$@" && apt-get clean' sh "${PACKAGES[@]}" >&2; then
  log "apt-get install ${PACKAGES[*]} in the Debian $SUITE root failed (see above); run this script again to retry"
  exit 1
fi
# The root's own store starts empty. Its Nix is single-user, like the builder lab's: Debian's
# nix-bin alone makes no nixbld group (every command would warn that it does not exist).
mkdir -p "$root/nix/store" "$root/nix/var/nix" "$root/etc/nix"
printf '%s\n' '# made by scripts/ensure-nix.sh' 'build-users-group =' >"$root/etc/nix/nix.conf"

cat >"$dir/libexec/enter" <<'EOF'
#!/bin/sh
# Runs in a private mount namespace (see ../bin/*): $1 = the root, $2 = program, the rest its
# arguments. Mounts /proc, /dev and this machine's folders into the root, then runs the program
# there in the caller's working folder.
set -eu
root=$1
program=$2
shift 2
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
# Every top-level folder the root does not have itself (tmp, home, root, work, srv, opt, …).
for d in /*/; do
  d=${d%/}
  case "$d" in
    /bin | /boot | /dev | /etc | /lib | /lib32 | /lib64 | /libx32 | /nix | /proc | /run | /sbin | /sys | /usr | /var) continue ;;
  esac
  [ -L "$d" ] && continue
  mkdir -p "$root$d"
  mount --rbind "$d" "$root$d"
done
if [ -n "${HOME:-}" ] && [ -d "$HOME" ] && ! [ -d "$root$HOME" ]; then
  mkdir -p "$root$HOME"
  mount --rbind "$HOME" "$root$HOME"
fi
exec unshare --root="$root" --wd="$PWD" -- "/usr/bin/$program" "$@"
EOF
chmod +x "$dir/libexec/enter"
for program in "${PROGRAMS[@]}"; do
  cat >"$dir/bin/$program" <<EOF
#!/bin/sh
# $program of Nix from Debian $SUITE (made by scripts/ensure-nix.sh), with its own /nix.
exec unshare -m --propagation private -- "$dir/libexec/enter" "$root" $program "\$@"
EOF
  chmod +x "$dir/bin/$program"
done

version=$("$dir/bin/nix" --version)
log "$version in $dir ($((SECONDS - start)) s, $(du -sh "$dir" | cut -f1))"
echo "$stamp" >"$marker"
echo "$dir/bin"
