# Bash completion for the Glow tools (glow-prep, glow-train, glow-sample, glow-bpd,
# glow-ckpt, glow-plot, glow-encode, glow-decode, glow-latent, pngcat).
# Installed as share/bash-completion/completions/TOOL for every tool (bash-completion
# loads it on the first TAB after TOOL); or source it from ~/.bashrc.
#
# The options come from the tool's own --help (read once per shell and tool), so
# they are always the installed tool's: the option lines of --help (those that
# start with '-') and the bracketed options of glow-latent's commands. The first
# word completes glow-latent's commands and glow-ckpt's import; -c/--config
# completes the shipped configs by name (the tool's ../share/glow/configs) and
# .yml files; --device, --format, --input and --permutation their values; other
# arguments complete as file names.

declare -gA _glow_opts_cache=()

# _glow_help_opts CMD [SUBCOMMAND]: the options --help lists, one a line
_glow_help_opts() {
    local key="$*"
    if [[ -z ${_glow_opts_cache[$key]+set} ]]; then
        _glow_opts_cache[$key]=$("$@" --help 2>/dev/null | awk '
            /^ +-/ && index($0, "-") <= 9 {  # an option line: its tag, before the gap
                tag = $0; sub(/^ +/, "", tag); sub(/  .*/, "", tag)
                n = split(tag, w, /[ ,\/=]+/)
                for (i = 1; i <= n; i++) if (w[i] ~ /^--?[A-Za-z][A-Za-z0-9-]*$/) print w[i]
                next
            }
            {                              # [--opt ARG] in a command line
                s = $0
                while (match(s, /\[--?[A-Za-z][A-Za-z0-9-]*/)) {
                    print substr(s, RSTART + 1, RLENGTH - 1); s = substr(s, RSTART + RLENGTH)
                }
            }' | sort -u)
    fi
    printf '%s\n' "${_glow_opts_cache[$key]}"
}

# the config names the tool finds (libcommon/config/config_find.h)
_glow_config_names() {
    local exe dir d f
    exe=$(type -P "$1") || return 0
    exe=$(readlink -f "$exe")
    dir=${exe%/*}/../share/glow/configs
    local IFS=:
    for d in ${GLOW_CONFIG_PATH:-} $dir; do
        for f in "$d"/*.yml; do [ -f "$f" ] && { f=${f##*/}; printf '%s\n' "${f%.yml}"; }; done
    done
}

_glow_complete() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local cmd=${COMP_WORDS[0]} sub=() IFS=$'\n'
    COMPREPLY=()
    case ${cmd##*/} in
    glow-latent)
        if [ "$COMP_CWORD" = 1 ]; then
            COMPREPLY=($(compgen -W "$("$cmd" --help 2>/dev/null | sed -n 's/^  \([a-z][a-z]*\) .*/\1/p' | sort -u)" -- "$cur"))
            return 0
        fi
        ;;
    glow-ckpt)
        if [ "$COMP_CWORD" = 1 ] && [[ $cur != -* ]]; then
            COMPREPLY=($(compgen -W import -- "$cur") $(compgen -f -- "$cur"))
            return 0
        fi
        [ "${COMP_WORDS[1]}" = import ] && sub=(import)
        ;;
    esac
    case $prev in
    -c|--config)
        COMPREPLY=($(compgen -W "$(_glow_config_names "$cmd")" -- "$cur") $(compgen -f -X '!*.yml' -- "$cur") $(compgen -d -- "$cur"))
        return 0 ;;
    --device)
        COMPREPLY=($(compgen -W $'cpu\ncuda\ncuda:0\nauto' -- "$cur")); return 0 ;;
    --format)
        COMPREPLY=($(compgen -W $'csv\nlist\ndir\nidx\ncifar10\ncifar\ncifar100\nimage' -- "$cur")); return 0 ;;
    --input)
        COMPREPLY=($(compgen -W $'centered\nunit' -- "$cur")); return 0 ;;
    --permutation)
        COMPREPLY=($(compgen -W reverse -- "$cur")); return 0 ;;
    -o|--out|--output|--split|--root|--resume|--init|--val|--ood|--labels|--classes|--val-out|--bpd|-e|--export-weights)
        COMPREPLY=($(compgen -f -- "$cur")); return 0 ;;
    esac
    if [[ $cur == -* ]]; then
        local opts
        opts=$(_glow_help_opts "$cmd" "${sub[@]}")
        # glow-latent's options common to every command are said in prose
        [ "${cmd##*/}" = glow-latent ] && opts+=$'\n-o\n--output\n--mem-limit\n-h\n--help\n--version'
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
        return 0
    fi
    COMPREPLY=($(compgen -f -- "$cur"))
}

complete -F _glow_complete -o filenames glow-prep glow-train glow-sample glow-bpd glow-ckpt glow-plot \
    glow-encode glow-decode glow-latent pngcat
