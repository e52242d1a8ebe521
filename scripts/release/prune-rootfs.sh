#!/bin/sh
# Prunes a runner image's Debian root filesystem (Dockerfile stages runner and
# claude-code-rootfs; both are flattened into one layer, so what goes here costs nothing).
# Last step of its stage: it leaves dpkg's state inconsistent (perl purged), so apt
# cannot install anything afterwards.
set -eu
# Perl beyond perl-base serves only git's perl extras (add -i/-p, send-email, svn):
# ~50 MB unpacked, which the 45 MB runner budget cannot carry. Core git does not use it.
# The dpkg-query list is split on purpose.
# shellcheck disable=SC2046
dpkg --purge --force-depends liberror-perl $(dpkg-query -W -f '${Package} ' perl 'perl-modules-*' 'libperl5*')
# Servers and mail/IMAP helpers an agent does not use; one git binary, not two;
# iconv modules (glibc converts UTF-8/ASCII/UCS without them).
g=/usr/lib/git-core
rm -f "$g/git-daemon" "$g/git-http-backend" "$g/git-http-push" "$g/git-imap-send" \
  "$g/git-shell" "$g/scalar" /usr/bin/git-shell /usr/bin/scalar
ln -sf ../../bin/git "$g/git"
# The runner applies AOF_RUN_RLIMIT_* through util-linux prlimit (Essential in Debian).
prlimit --version >/dev/null
rm -rf /usr/lib/*-linux-gnu*/gconv
rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old /var/log/* \
  /usr/share/doc/* /usr/share/man/* /usr/share/info/* /usr/share/locale/* /usr/share/lintian
getent passwd 1000 >/dev/null || {
  echo 'aof:x:1000:1000:aof:/app:/bin/sh' >> /etc/passwd
  echo 'aof:x:1000:' >> /etc/group
}
