/* Every slot of the backend table is filled, on every backend that is built: the
 * CPU backend always (a real one from cpu_backend_new, and cpu_backend_fill_table),
 * the CUDA backend when built, through cuda_backend_fill_table, which needs no GPU.
 * The slots are read generically, as the function pointers after `impl`, so a
 * slot added to backend.h is checked here without editing this file. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "backend/backend.h"
#include "check.h"
#include "cpu/cpu_backend.h"
#ifdef GLOW_HAVE_CUDA
#include "cuda/cuda_backend.h"
#endif

typedef void (*slot_fn)(void);

/* After name and impl, struct backend is function pointers only. */
static_assert(offsetof(backend, impl) == sizeof(const char *), "name, then impl");
static_assert(offsetof(backend, alloc) == offsetof(backend, impl) + sizeof(void *),
              "the slots start right after impl");
static_assert((sizeof(backend) - offsetof(backend, alloc)) % sizeof(slot_fn) == 0,
              "the slots are function pointers");
#define N_SLOTS ((sizeof(backend) - offsetof(backend, alloc)) / sizeof(slot_fn))

/* The name of the slot at byte offset off, for messages. */
static const char *slot_name(size_t off)
{
#define SLOT_ENTRY(slot) {offsetof(backend, slot), #slot},
    static const struct {
        size_t off;
        const char *name;
    } names[] = {BACKEND_SLOTS(SLOT_ENTRY)};
#undef SLOT_ENTRY
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].off == off)
            return names[i].name;
    return "(a slot missing from BACKEND_SLOTS)";
}

static slot_fn slot_at(const backend *b, size_t i)
{
    slot_fn f;
    memcpy(&f, (const char *)b + offsetof(backend, alloc) + i * sizeof f, sizeof f);
    return f;
}

/* b has the backend's name and no empty slot. */
static void check_table(const char *what, const backend *b, const char *name)
{
    CHECKF(b->name && strcmp(b->name, name) == 0, "%s: name \"%s\", expected \"%s\"", what,
           b->name ? b->name : "(null)", name);
    size_t filled = 0;
    for (size_t i = 0; i < N_SLOTS; i++) {
        size_t off = offsetof(backend, alloc) + i * sizeof(slot_fn);
        CHECKF(slot_at(b, i) != NULL, "%s: slot %s (offset %zu) is empty", what, slot_name(off),
               off);
        filled += slot_at(b, i) != NULL;
    }
    CHECKF(filled == N_SLOTS, "%s: %zu of %zu slots filled", what, filled, (size_t)N_SLOTS);
}

/* A table whose every byte is 0 before the fill: what the fill leaves is NULL. */
static void check_fill(const char *what, void (*fill)(backend *), const char *name)
{
    backend b;
    memset(&b, 0, sizeof b);
    fill(&b);
    check_table(what, &b, name);
    CHECK(b.impl == NULL); /* the fill opens nothing */
}

int main(void)
{
    /* the list names every slot, and the generic walk sees as many */
#define ONE(slot) +1
    CHECK(N_SLOTS == (size_t)(0 BACKEND_SLOTS(ONE)));
#undef ONE
    CHECK(N_SLOTS >= 39);
    CHECK(strcmp(slot_name(offsetof(backend, alloc)), "alloc") == 0);
    CHECK(strcmp(slot_name(offsetof(backend, ema)), "ema") == 0);

    /* the check itself: an empty table fails every slot */
    backend empty;
    memset(&empty, 0, sizeof empty);
    size_t set = 0;
    for (size_t i = 0; i < N_SLOTS; i++)
        set += slot_at(&empty, i) != NULL;
    CHECK(set == 0);

    check_fill("cpu_backend_fill_table", cpu_backend_fill_table, "cpu");
    glow_error err = {{0}};
    backend *cpu = cpu_backend_new(&err);
    CHECKF(cpu != NULL, "cpu_backend_new: %s", err.msg);
    if (cpu) {
        check_table("cpu_backend_new", cpu, "cpu");
        CHECK(cpu->impl != NULL);
        /* the real backend's table is the one the fill writes */
        backend filled;
        memset(&filled, 0, sizeof filled);
        cpu_backend_fill_table(&filled);
        for (size_t i = 0; i < N_SLOTS; i++)
            CHECKF(slot_at(cpu, i) == slot_at(&filled, i), "cpu_backend_new: slot %s differs",
                   slot_name(offsetof(backend, alloc) + i * sizeof(slot_fn)));
        cpu->destroy(cpu);
    }
#ifdef GLOW_HAVE_CUDA
    check_fill("cuda_backend_fill_table", cuda_backend_fill_table, "cuda");
#endif
    return check_summary();
}
