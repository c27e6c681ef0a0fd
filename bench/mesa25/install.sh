#!/bin/sh
# Unpacks Mesa 25.0.7's Vulkan driver (lavapipe) from bookworm-backports into a private prefix,
# leaving the system Mesa alone: a private apt configuration downloads the .debs and `dpkg -x`
# unpacks them. Idempotent: a second run re-downloads nothing that is already there.
#
#   sh bench/mesa25/install.sh [PREFIX]        # PREFIX defaults to /opt/mesa25
#   . bench/mesa25/env.sh [PREFIX]             # then: deno task train ... runs on Mesa 25
#
# Needs Debian 12 (bookworm) with the Debian archive keyring; nothing is installed system-wide.
set -eu
PREFIX=${1:-/opt/mesa25}
APT=$PREFIX/apt
MESA_VERSION=25.0.7-2~bpo12+1
DRM_VERSION=2.4.123-1~bpo12+1
# lavapipe and the libdrm it is linked against (>= 2.4.121; bookworm has 2.4.114). Its other
# dependencies (libllvm15, libvulkan1, libxcb*, libwayland-client0, zlib, zstd) are bookworm's.
PACKAGES="mesa-vulkan-drivers=$MESA_VERSION libdrm2=$DRM_VERSION libdrm-amdgpu1=$DRM_VERSION"

mkdir -p "$APT/lists/partial" "$APT/archives/partial" "$APT/etc" "$APT/debs"
cat >"$APT/etc/sources.list" <<SOURCES
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
SOURCES
apt_private() {
  "$@" -o Dir::Etc::SourceList="$APT/etc/sources.list" -o Dir::Etc::SourceParts=/dev/null \
    -o Dir::State::Lists="$APT/lists" -o Dir::Cache="$APT" -o Dir::Cache::archives="$APT/archives" \
    -o APT::Sandbox::User=root
}

# Our own ICD file, naming the library by absolute path (the packaged one says only
# "libvulkan_lvp.so", which the system's copy could answer).
ICD=$PREFIX/lvp_icd.json
if [ -f "$PREFIX/.installed-$MESA_VERSION" ] && [ -f "$ICD" ]; then
  echo "Mesa $MESA_VERSION already unpacked in $PREFIX"
  exit 0
fi
apt_private apt-get update -qq
cd "$APT/debs"
for package in $PACKAGES; do
  name=${package%%=*}
  ls "${name}"_*.deb >/dev/null 2>&1 || apt_private apt-get download -q "$package"
done
for deb in "$APT"/debs/*.deb; do dpkg -x "$deb" "$PREFIX"; done
sed "s|\"libvulkan_lvp.so\"|\"$PREFIX/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so\"|" \
  "$PREFIX/usr/share/vulkan/icd.d/lvp_icd.json" >"$ICD"
touch "$PREFIX/.installed-$MESA_VERSION"
echo "Mesa $MESA_VERSION unpacked in $PREFIX; ICD: $ICD"
