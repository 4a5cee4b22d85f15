# Shared settings for the DNSSEC test bed (source this file).
TB="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUN="${RUN:-$TB/run}"
AUTH_ADDR="${AUTH_ADDR:-127.0.0.1}"   # authoritative server (knotd or nsd)
AUTH_PORT="${AUTH_PORT:-5301}"
RES_ADDR="${RES_ADDR:-127.0.0.1}"     # validating resolver (unbound)
RES_PORT="${RES_PORT:-5302}"
AUTH="${AUTH:-knot}"                  # knot | nsd
DEAD_PORT="${DEAD_PORT:-5303}"           # a server that answers REFUSED: SERVFAIL
SLOW_PORT="${SLOW_PORT:-5304}"           # a server that never answers: timeout
