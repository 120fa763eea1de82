/* Small dense float64 linear algebra on the host: LU with partial pivoting,
 * determinants and inverses of n x n row-major matrices (invconv weights are at
 * most a few hundred wide, so O(n^3) is cheap). */
#ifndef GLOW_LINALG_H
#define GLOW_LINALG_H

/* Factor a in place into L (unit lower, below the diagonal) and U (on and above),
 * with rows swapped as recorded in perm (row i of the factored matrix is row
 * perm[i] of the original). *sign is the permutation's parity (+1 or -1).
 * Returns 0, or -1 when a pivot is exactly zero (singular). */
int linalg_lu(double *a, int n, int *perm, int *sign);

/* log|det a| (-INFINITY when singular) and the determinant's sign (0 when singular). */
double linalg_logabsdet(const double *a, int n, int *sign);
double linalg_det(const double *a, int n);

/* inv = a^-1. Returns 0, or -1 when a is singular. */
int linalg_inverse(const double *a, int n, double *inv);

/* c = a @ b for n x n matrices. */
void linalg_matmul(const double *a, const double *b, int n, double *c);

#endif
