#!/usr/bin/env bats
# pipelines/celeba.mk and pipelines/imagenet64.mk: they parse, refuse to run
# without DATA, and their data stage packs a small folder of PNGs listed in a
# seed-style meta CSV (training needs a GPU-sized run and is not run here).

bats_require_minimum_version 1.5.0
load helpers

# images DIR N: N 16x16 RGB PNGs DIR/000000.png ... drawn from the reference
# model, and DIR/meta.csv listing them in the seed's format.
images() {
    glow-sample "$AFF" -n "$2" -t 1 | pngcat --split "$1"
    { echo ",name"; i=0; for f in "$1"/*.png; do echo "$i,$(basename "$f")"; i=$((i + 1)); done; } \
        >"$1/meta.csv"
}

# count SHARD_DIR: the images in it, as glow-bpd's summary reports them.
count() { glow-bpd "$AFF" "$1" | sed -n 's/.*(n=\([0-9]*\))$/\1/p'; }

@test "the pipelines parse (dry run) and show their settings" {
    for p in celeba imagenet64; do
        run make -C "$ROOT" -f "pipelines/$p.mk" -n DATA=x OUT="$TMP/out"
        [ "$status" -eq 0 ]
        assert_contains "$output" "glow-prep --crop --size"
        assert_contains "$output" "glow-train -c configs/"
        assert_contains "$output" "glow-sample"
        assert_contains "$output" "glow-bpd"
        run make -C "$ROOT" -f "pipelines/$p.mk" help
        [ "$status" -eq 0 ]
        assert_contains "$output" "DATA"
    done
    run make -C "$ROOT" -f pipelines/celeba.mk -n DATA=x VARIANT=v1
    assert_contains "$output" "configs/glow-256x256-celeba-v1.yml"
    run --separate-stderr make --no-print-directory -C "$ROOT" -f pipelines/celeba.mk -n DATA=x VARIANT=v2
    [ "$status" -eq 2 ]
    [ -z "$output" ]
    assert_contains "$stderr" "VARIANT=v2: expected v0"
}

@test "without DATA, or with DATA not a folder, they stop with a clear error" {
    for p in celeba imagenet64; do
        set -- --no-print-directory -C "$ROOT" -f "pipelines/$p.mk" OUT="$TMP/out" BUILD="$BUILD"
        run --separate-stderr make "$@"
        [ "$status" -eq 2 ]
        [ -z "$output" ]
        assert_contains "$stderr" "DATA is not set"
        run --separate-stderr make "$@" DATA="$TMP/none"
        [ "$status" -eq 2 ]
        [ -z "$output" ]
        assert_contains "$stderr" "$p.mk: DATA=$TMP/none: no such folder"
        run --separate-stderr make "$@" DATA="$TMP" META="$TMP/none.csv"
        [ "$status" -eq 2 ]
        [ -z "$output" ]
        assert_contains "$stderr" "$p.mk: META=$TMP/none.csv: no such file"
    done
    [ ! -e "$TMP/out/shards" ]
}

@test "the data stage packs a meta CSV into train and held-out shards" {
    images "$TMP/img" 20
    make -C "$ROOT" -f pipelines/celeba.mk data DATA="$TMP/img" META="$TMP/img/meta.csv" \
        OUT="$TMP/celeba" SIZE=16 BUILD="$BUILD"
    [ "$(count "$TMP/celeba/shards/train")" -eq 19 ]
    [ "$(count "$TMP/celeba/shards/val")" -eq 1 ]
    # A separate held-out meta file.
    head -n 16 "$TMP/img/meta.csv" >"$TMP/train.csv"
    { echo ",name"; tail -n 5 "$TMP/img/meta.csv"; } >"$TMP/test.csv"
    make -C "$ROOT" -f pipelines/imagenet64.mk data DATA="$TMP/img" META="$TMP/train.csv" \
        TEST_META="$TMP/test.csv" OUT="$TMP/in64" SIZE=16 BUILD="$BUILD"
    [ "$(count "$TMP/in64/shards/train")" -eq 15 ]
    [ "$(count "$TMP/in64/shards/val")" -eq 5 ]
}

@test "the whole pipeline runs on a tiny model: pack, train, resume, sample, score" {
    command -v glow-train >/dev/null || skip "glow-train is not built"
    images "$TMP/img" 20
    tiny_config "$TMP/cfg.yml" model.image_size="[16, 16]" model.channels=3 train.ema_decay=0.9
    set -- -C "$ROOT" -f pipelines/celeba.mk DATA="$TMP/img" META="$TMP/img/meta.csv" \
        OUT="$TMP/c" SIZE=16 BUILD="$BUILD" CONFIG="$TMP/cfg.yml" DEVICE=cpu SAMPLES=9
    make "$@" TRAIN_FLAGS="--steps 2 -q"
    [ "$(head -c 8 "$TMP/c/samples-v0.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ]
    grep -Eq '^bpd [0-9.]+ ± [0-9.]+ \(n=1\)$' "$TMP/c/bpd-v0.txt"
    glow-ckpt "$TMP/c/run-v0/checkpoint.safetensors" | grep -q '^step: 2$'
    # A stopped run continues from its checkpoint (make's echo of the recipe
    # shows it: not silenced by a -s that the suite's own make passed down).
    rm "$TMP/c/run-v0/.done"
    MAKEFLAGS= run make "$@" TRAIN_FLAGS="--steps 3 -q"
    [ "$status" -eq 0 ]
    assert_contains "$output" "glow-train --resume"
    glow-ckpt "$TMP/c/run-v0/checkpoint.safetensors" | grep -q '^step: 3$'
}
