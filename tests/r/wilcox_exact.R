# Reference p-values for tests/test_radiography.py: exactRankTests::wilcox.exact, the exact
# signed-rank test with mid-ranks for ties and zero differences dropped.
# Usage: Rscript wilcox_exact.R input.csv output.csv (input: one column `d`, one sample per
# column `sample`).
suppressPackageStartupMessages(library(exactRankTests))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
out <- do.call(rbind, lapply(split(d$d, d$sample), function(x) {
  test <- wilcox.exact(x, mu = 0, paired = FALSE, exact = TRUE)
  data.frame(statistic = unname(test$statistic), p = test$p.value)
}))
out$sample <- names(split(d$d, d$sample))
write.csv(out, args[2], row.names = FALSE)
