# Reference fit for tests/test_geepack.py: geepack::geeglm with a log-link Gaussian model.
# Usage: Rscript geeglm_fit.R input.csv corstr output.csv
# input.csv has columns cluster, visit, time, y, sorted by cluster then visit (geepack needs
# rows grouped by cluster). A log link with zeros in y cannot find starting values, and
# `start=` breaks in geeglm 1.3.9, so a length-N `mustart` (the pooled mean) is given instead.
suppressPackageStartupMessages(library(geepack))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
d$cluster <- factor(d$cluster, levels = unique(d$cluster))
d$mu0 <- mean(d$y)
fit <- geeglm(y ~ time, id = cluster, waves = visit, data = d,
              family = gaussian(link = "log"), corstr = args[2], mustart = mu0,
              control = geese.control(epsilon = 1e-12, maxit = 200))
coefs <- summary(fit)$coefficients
alpha <- if (args[2] == "independence") 0 else fit$geese$alpha[[1]]
# Pieces of Pan's QIC: the residual sum of squares and tr(D'D V_R), D = dμ/dβ = μ·X (log link)
mu <- as.vector(fitted(fit))
D <- mu * model.matrix(fit)
rss <- sum((d$y - mu)^2)
penalty <- sum(diag(crossprod(D) %*% fit$geese$vbeta))
out <- data.frame(term = c("intercept", "time", "alpha", "scale", "rss", "penalty"),
                  estimate = c(coefs[, "Estimate"], alpha, fit$geese$gamma[[1]], rss, penalty),
                  se = c(coefs[, "Std.err"], NA, NA, NA, NA))
write.csv(out, args[3], row.names = FALSE)
