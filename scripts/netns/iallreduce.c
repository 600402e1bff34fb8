/* Time of MPI_Iallreduce + MPI_Wait (float sum) as ebft-dist's gradient reduction calls it
 * (MPI_IN_PLACE), and the same without MPI_IN_PLACE, for scripts/netns-cluster.sh runs:
 *   mpicc -O2 -o /tmp/iallreduce scripts/netns/iallreduce.c
 *   scripts/netns-cluster.sh run --hosts 3 --rate 1gbit -np 3 --bin /tmp/iallreduce -- 64 3
 * Arguments: MiB per call (default 64), calls per variant (default 3). Prints, on rank 0, the
 * slowest rank's mean seconds per call and the result check (every element must equal the sum
 * of the ranks' contributions, 1 + 2 + ... + n). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static int run(int inplace, float *buf, float *out, long n, int calls, int rank, int size) {
  double t, worst, sum = 0;
  int bad = 0;
  for (int c = 0; c <= calls; c++) {            /* call 0 is a warm-up, not timed */
    for (long i = 0; i < n; i++) buf[i] = (float)(rank + 1);
    MPI_Request req;
    MPI_Barrier(MPI_COMM_WORLD);
    t = MPI_Wtime();
    if (inplace) MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req);
    else MPI_Iallreduce(buf, out, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req);
    MPI_Wait(&req, MPI_STATUS_IGNORE);
    t = MPI_Wtime() - t;
    MPI_Allreduce(&t, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    if (c > 0) sum += worst;
    float want = (float)size * (size + 1) / 2, *r = inplace ? buf : out;
    for (long i = 0; i < n; i++) if (r[i] != want) { bad = 1; break; }
  }
  int anybad;
  MPI_Allreduce(&bad, &anybad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (rank == 0)
    printf("iallreduce %-12s %d ranks %ld MiB: %.4f s per call = %.3f GB/s algbw, result %s\n",
           inplace ? "in-place" : "out-of-place", size, n * 4 >> 20, sum / calls,
           n * 4 / (sum / calls) / 1e9, anybad ? "WRONG" : "OK");
  return anybad;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  long mib = argc > 1 ? atol(argv[1]) : 64;
  int calls = argc > 2 ? atoi(argv[2]) : 3;
  if (mib < 1 || mib > 512 || calls < 1) {
    if (rank == 0) fprintf(stderr, "usage: iallreduce [MiB 1..512] [calls >= 1]\n");
    MPI_Finalize();
    return 2;
  }
  long n = mib << 18;                            /* floats */
  float *buf = malloc(n * sizeof *buf), *out = malloc(n * sizeof *out);
  if (!buf || !out) { fprintf(stderr, "out of memory\n"); MPI_Abort(MPI_COMM_WORLD, 1); }
  int bad = run(1, buf, out, n, calls, rank, size) | run(0, buf, out, n, calls, rank, size);
  MPI_Finalize();
  return bad;
}
