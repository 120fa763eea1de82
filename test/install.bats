#!/usr/bin/env bats
# Installing (README "Installing"): configs by name, make install / uninstall,
# the man pages against --help, the bash completion, make deb and its check.

load helpers

FMNIST=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

# tiny_data DIR: 64 8x8 gray images as shard files in DIR
tiny_data() {
    if [ -f "$FMNIST" ]; then
        glow-prep -q --size 8 --limit 64 -o "$1" "$FMNIST"
    else
        mkdir -p "$1" && shardgen "$1/a.glow" --n 64 --c 1 --h 8 --w 8
    fi
}

@test "glow-train -c NAME finds the shipped config from any folder" {
    tiny_data data
    OMP_NUM_THREADS=1 run glow-train -q -c tiny --device cpu --steps 2 -o run data
    [ "$status" -eq 0 ]
    grep -q '^name: "tiny"$' run/config.yml
    # a name with .yml too
    OMP_NUM_THREADS=1 run glow-train -q -c tiny.yml --device cpu --steps 2 -o run2 data
    [ "$status" -eq 0 ]
}

@test "glow-train -c: GLOW_CONFIG_PATH first, a file before a name, a clear error" {
    tiny_data data
    mkdir cfgs
    sed 's/^name: tiny$/name: mine/' "$ROOT/configs/tiny.yml" >cfgs/tiny.yml
    GLOW_CONFIG_PATH="$PWD/nowhere::$PWD/cfgs" OMP_NUM_THREADS=1 run glow-train -q -c tiny --device cpu --steps 2 -o run data
    [ "$status" -eq 0 ]
    grep -q '^name: "mine"$' run/config.yml
    # an existing file of that name in the current folder is the file
    sed 's/^name: tiny$/name: here/' "$ROOT/configs/tiny.yml" >tiny
    OMP_NUM_THREADS=1 run glow-train -q -c tiny --device cpu --steps 2 -o run2 data
    [ "$status" -eq 0 ]
    grep -q '^name: "here"$' run2/config.yml
    run glow-train -c no-such-config -o run3 data
    [ "$status" -eq 1 ]
    assert_contains "$output" "glow-train: no-such-config: No such file or directory, nor a config of that name in"
    assert_contains "$output" "share/glow/configs"
    # a path is not looked up
    run glow-train -c ./cifar10 -o run3 data
    [ "$status" -eq 1 ]
    assert_contains "$output" "./cifar10"
}

@test "make install: PREFIX and DESTDIR; the installed tools work from elsewhere; uninstall removes exactly that" {
    mkdir -p stage/opt/keep/share/man/man1 && touch stage/opt/keep/share/man/man1/other.1
    run make -s -C "$ROOT" BUILD="$BUILD" install PREFIX=/opt/keep DESTDIR="$TMP/stage"
    [ "$status" -eq 0 ]
    P=stage/opt/keep
    for t in "$ROOT/$BUILD"/bin/*; do
        t=$(basename "$t")
        [ -x "$P/bin/$t" ]
        [ -f "$P/share/man/man1/$t.1" ]
        [ -f "$P/share/bash-completion/completions/$t" ]
    done
    [ -f "$P/share/man/man5/glow-shard.5" ] && [ -f "$P/share/man/man5/glow-latent-stream.5" ]
    for c in "$ROOT"/configs/*.yml; do cmp "$c" "$P/share/glow/configs/$(basename "$c")"; done
    [ -f "$P/share/doc/glow/README.md" ] && [ -f "$P/share/doc/glow/docs/formats.md" ]
    grep -q "^BIN *?= /opt/keep/bin$" "$P/share/glow/pipelines/fashion-mnist.mk"
    grep -q "^CONFIG *?= /opt/keep/share/glow/configs/fashion-mnist.yml$" "$P/share/glow/pipelines/fashion-mnist.mk"
    grep -q '^\.TH GLOW-TRAIN 1 .*"glow [0-9]' "$P/share/man/man1/glow-train.1"
    # the staged tools find their own configs (no build/ on the way)
    tiny_data data
    OMP_NUM_THREADS=1 run env PATH=/usr/bin:/bin "$P/bin/glow-train" -q -c fashion-mnist --set model.image_size=[8,8] \
        --set model.levels=2 --set model.steps=1 --set model.width=8 --set train.batch_size=8 --set train.init_batch=8 \
        --device cpu --steps 1 -o run data
    [ "$status" -eq 0 ]
    grep -q '^name: "fashion-mnist"$' run/config.yml
    n=$(grep -c '^f ' "$P/share/glow/MANIFEST")
    [ "$n" -ge 40 ]
    run make -s -C "$ROOT" BUILD="$BUILD" uninstall PREFIX=/opt/keep DESTDIR="$TMP/stage"
    [ "$status" -eq 0 ]
    # what was there before stays; nothing else does
    [ "$(cd stage && find . -type f)" = "./opt/keep/share/man/man1/other.1" ]
    [ "$(cd stage && find . -type d | sort | tr '\n' ' ')" = ". ./opt ./opt/keep ./opt/keep/share ./opt/keep/share/man ./opt/keep/share/man/man1 " ]
    # nothing installed: a clear error
    run make -s -C "$ROOT" BUILD="$BUILD" uninstall PREFIX=/opt/keep DESTDIR="$TMP/stage"
    [ "$status" -ne 0 ]
    assert_contains "$output" "nothing installed under"
}

@test "the man pages: no warnings, every --help option in the page and the other way round" {
    run env BUILD="$BUILD" "$ROOT/scripts/man-check.sh"
    [ "$status" -eq 0 ]
    assert_contains "$output" " pages, 0 problems"
    [ "$(grep -c . <<<"$output")" -eq 1 ]
}

@test "man-check fails on an option missing from a page, one --help lacks, a warning, a tool without a page" {
    cp -r "$ROOT/man" pages
    sed -i '/^\.BI \\-\\-bg " V"$/,/^Gray level/d' pages/pngcat.1
    ! grep -q 'bg' pages/pngcat.1
    printf '.TP\n.B \\-\\-no\\-such\\-option\nNothing.\n' >>pages/glow-bpd.1
    printf '.BX bad macro\n' >>pages/glow-sample.1
    rm pages/glow-decode.1
    run env BUILD="$BUILD" MAN_DIR="$TMP/pages" "$ROOT/scripts/man-check.sh"
    [ "$status" -eq 1 ]
    assert_contains "$output" "pngcat.1: options of --help without an entry in the page: --bg"
    assert_contains "$output" "glow-bpd.1: entries of the page that --help does not have: --no-such-option"
    assert_contains "$output" "glow-sample.1: groff warnings"
    assert_contains "$output" "glow-decode: no man page"
}

# complete_words WORD...: COMPREPLY for the last word, one a line
complete_words() {
    bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _glow_complete; printf "%s\n" "${COMPREPLY[@]}"' \
        _ "$ROOT/completion/glow.bash" "$@"
}

@test "bash completion: registered for every tool; options, commands, configs, values" {
    run bash -c 'source "$1"; complete -p glow-train glow-latent glow-ckpt pngcat glow-prep' _ "$ROOT/completion/glow.bash"
    [ "$status" -eq 0 ]
    assert_contains "$output" "complete -o filenames -F _glow_complete glow-train"
    for t in "$ROOT/$BUILD"/bin/*; do
        bash -c 'source "$1"; complete -p "$2"' _ "$ROOT/completion/glow.bash" "$(basename "$t")" >/dev/null
    done
    [ "$(complete_words glow-train --re)" = --resume ]
    [ "$(complete_words glow-train --init | tr '\n' ' ')" = "--init --init-ema " ]
    [ "$(complete_words glow-prep --labels | tr '\n' ' ')" = "--labels --labels-from-dirs " ]
    # continuation lines of --help are not options
    run complete_words glow-ckpt --
    [[ "$output" != *--resume* ]]
    [ "$(complete_words glow-latent s | tr '\n' ' ')" = "scale select " ]
    [ "$(complete_words glow-latent mix --sl)" = --slerp ]
    [ "$(complete_words glow-latent mix --out)" = --output ]
    [ "$(complete_words glow-ckpt imp)" = import ]
    [ "$(complete_words glow-ckpt import --we)" = --weight-y ]
    [ "$(complete_words glow-train -c ti)" = tiny ]
    [ "$(complete_words glow-bpd --device cu | tr '\n' ' ')" = "cuda cuda:0 " ]
    touch some-file.glow
    [ "$(complete_words pngcat some)" = some-file.glow ]
}

@test "make deb: a package with the tools, pages, configs, completion and the linked libraries' Depends" {
    run make -s -C "$ROOT" BUILD="$BUILD" deb
    [ "$status" -eq 0 ]
    deb=$(ls "$ROOT/$BUILD"/glow-tools_*.deb)
    [ "$(dpkg-deb -f "$deb" Package)" = glow-tools ]
    [[ "$(dpkg-deb -f "$deb" Version)" == [0-9]* ]]
    deps=$(dpkg-deb -f "$deb" Depends)
    assert_contains "$deps" "libc6"
    assert_contains "$deps" "libdnnl"
    assert_contains "$deps" "libyaml"
    list=$(dpkg-deb -c "$deb")
    for p in ./usr/bin/glow-train ./usr/bin/pngcat ./usr/share/man/man1/glow-train.1.gz \
             ./usr/share/man/man5/glow-shard.5.gz ./usr/share/glow/configs/tiny.yml \
             ./usr/share/glow/pipelines/fashion-mnist.mk ./usr/share/bash-completion/completions/glow-train \
             ./usr/share/doc/glow-tools/copyright; do
        assert_contains "$list" "$p"
    done
    [[ "$list" != *MANIFEST* ]]
    # owned by root in the archive, whoever built it
    [[ "$(dpkg-deb -c "$deb" | awk '{ print $2 }' | sort -u)" == root/root ]]
}

# The package installed, used and removed. With GLOW_TEST_DEB_SYSTEM=1 and root
# (CI's fresh machine, .ci/run) on the system with dpkg -i/-r; otherwise into a
# private dpkg root (dpkg --root), the dependencies checked installed here.
@test "make deb-check: install, glow-train --help, a tiny training, remove" {
    ls "$ROOT/$BUILD"/glow-tools_*.deb >/dev/null 2>&1 || make -s -C "$ROOT" BUILD="$BUILD" deb
    mode=private
    [ "${GLOW_TEST_DEB_SYSTEM:-0}" = 1 ] && [ "$(id -u)" = 0 ] && mode=system
    echo "# deb-check mode: $mode" >&3
    run env BUILD="$BUILD" "$ROOT/scripts/deb-check.sh" $mode
    echo "$output"
    [ "$status" -eq 0 ]
    assert_contains "$output" "deb-check: $mode: ok"
    assert_contains "$output" "all "
}
