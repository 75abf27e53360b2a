# Reference values for tests/test_radiography.py, one call for every sample:
# - exact_*: exactRankTests::wilcox.exact, the exact signed-rank test with mid-ranks for ties
#   and zero differences dropped (only below 50 non-zero differences; NA from 50 on);
# - normal_*: stats::wilcox.test(exact = FALSE, correct = TRUE), the normal approximation with
#   the tie-corrected variance and the continuity correction, zero differences dropped.
# Usage: Rscript wilcox.R input.csv output.csv (input: one column `d`, one sample per value of
# column `sample`).
suppressPackageStartupMessages(library(exactRankTests))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
samples <- split(d$d, d$sample)
out <- do.call(rbind, lapply(samples, function(x) {
  normal <- wilcox.test(x, mu = 0, exact = FALSE, correct = TRUE)
  exact <- if (sum(x != 0) < 50) wilcox.exact(x, mu = 0, paired = FALSE, exact = TRUE) else NULL
  data.frame(
    exact_statistic = if (is.null(exact)) NA else unname(exact$statistic),
    exact_p = if (is.null(exact)) NA else exact$p.value,
    normal_statistic = unname(normal$statistic),
    normal_p = normal$p.value
  )
}))
out$sample <- names(samples)
write.csv(out, args[2], row.names = FALSE)
