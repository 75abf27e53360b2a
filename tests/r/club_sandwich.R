# Reference small-sample tests for tests/test_small_sample.py: clubSandwich's CR2 and CR3
# sandwiches with Satterthwaite df (Pustejovsky & Tipton 2018).
# Usage: Rscript club_sandwich.R input.csv model alpha output.csv
# input.csv has columns cluster, time, y. model "glm_log": a Gaussian log-link GLM (a GEE with
# an independence working correlation has its estimates); model "gls_exchangeable": GLS with
# the exchangeable correlation fixed at alpha (a converged GEE with that alpha has its
# estimates), so the working model is the GEE's.
suppressPackageStartupMessages({library(clubSandwich); library(nlme)})
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
d$cluster <- factor(d$cluster, levels = unique(d$cluster))
if (args[2] == "glm_log") {
  d$mu0 <- mean(d$y)
  fit <- glm(y ~ time, data = d, family = gaussian(link = "log"), mustart = mu0,
             control = glm.control(epsilon = 1e-14, maxit = 200))
} else {
  fit <- gls(y ~ time, data = d,
             correlation = corCompSymm(value = as.numeric(args[3]), form = ~ 1 | cluster,
                                       fixed = TRUE))
}
rows <- lapply(c("CR2", "CR3"), function(type) {
  ct <- coef_test(fit, vcov = type, cluster = d$cluster, test = c("naive-t", "Satterthwaite"))
  data.frame(type = type, term = c("intercept", "time"), beta = ct$beta, se = ct$SE,
             df = ct$df_Satt, p = ct$p_Satt)
})
write.csv(do.call(rbind, rows), args[4], row.names = FALSE)
