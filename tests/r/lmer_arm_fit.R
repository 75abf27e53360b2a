# Reference fit for tests/test_arraymixed.py: lme4 + lmerTest, the planning simulation's
# random-slope model y ~ arm * time + (1 + time | patient) + (1 + time | patient:lesion), REML,
# Satterthwaite df for arm:time, and the REML variance components.
# Usage: Rscript lmer_arm_fit.R input.csv output.csv (input columns patient_id, lesion_id, arm,
# time, y). bobyqa with a tight end radius, so that lme4 stops where the criterion is smallest.
suppressPackageStartupMessages(library(lmerTest))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
control <- lmerControl(optimizer = "bobyqa",
                       optCtrl = list(rhobeg = 2e-3, rhoend = 1e-12, maxfun = 1e5))
fit <- lmer(y ~ arm * time + (1 + time | patient_id) + (1 + time | patient_id:lesion_id),
            data = d, REML = TRUE, control = control)
row <- summary(fit)$coefficients["arm:time", ]
vc <- as.data.frame(VarCorr(fit))
part <- function(group, v1, v2) {
  hit <- vc$grp == group & vc$var1 == v1 & (if (is.na(v2)) is.na(vc$var2) else vc$var2 %in% v2)
  vc$vcov[hit]
}
out <- data.frame(beta = row[["Estimate"]], se = row[["Std. Error"]], df = row[["df"]],
                  p = row[["Pr(>|t|)"]], singular = isSingular(fit),
                  patient_var_int = part("patient_id", "(Intercept)", NA),
                  patient_cov = part("patient_id", "(Intercept)", "time"),
                  patient_var_slope = part("patient_id", "time", NA),
                  lesion_var_int = part("patient_id:lesion_id", "(Intercept)", NA),
                  lesion_cov = part("patient_id:lesion_id", "(Intercept)", "time"),
                  lesion_var_slope = part("patient_id:lesion_id", "time", NA),
                  residual_var = sigma(fit)^2)
write.csv(out, args[2], row.names = FALSE)
