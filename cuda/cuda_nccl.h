/* C interface of the NCCL communicator (cuda_nccl.cu), built when nccl.h and
 * libnccl are found (make NCCL=1 forces it). dist/dist.c makes the unique id on
 * rank 0, hands it to every process (MPI, or a file) and makes the communicator. */
#ifndef GLOW_CUDA_NCCL_H
#define GLOW_CUDA_NCCL_H

#include "backend/comm.h"

/* NCCL_UNIQUE_ID_BYTES; cuda_nccl.cu checks that they agree. */
#define GLOW_NCCL_ID_BYTES 128

#ifdef __cplusplus
extern "C" {
#endif
/* A new unique id (ncclGetUniqueId), on rank 0 only. Returns 0 or -1 with err set. */
int cuda_nccl_unique_id(unsigned char id[GLOW_NCCL_ID_BYTES], glow_error *err);
/* The communicator of process rank of size over the GPU of the CUDA backend b
 * (ncclCommInitRank; every process calls it with the same id). NULL with err set. */
glow_comm *cuda_nccl_comm_new(backend *b, int rank, int size,
                              const unsigned char id[GLOW_NCCL_ID_BYTES], glow_error *err);
#ifdef __cplusplus
}
#endif

#endif
