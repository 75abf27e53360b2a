# Reference fit for tests/test_mixed.py: lme4 + lmerTest, random intercepts and slopes for time
# by patient and by lesion within patient, REML, Satterthwaite df for the time coefficient.
# Usage: Rscript lmer_fit.R input.csv output.csv (input columns patient_id, lesion_id, time, y).
# The REML surface is flat along some directions: bobyqa with a tight end radius is used so that
# lme4 stops where the criterion is smallest, not where its default tolerance lets it.
suppressPackageStartupMessages(library(lmerTest))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
control <- lmerControl(optimizer = "bobyqa",
                       optCtrl = list(rhobeg = 2e-3, rhoend = 1e-12, maxfun = 1e5))
fit <- lmer(y ~ time + (1 + time | patient_id) + (1 + time | patient_id:lesion_id),
            data = d, REML = TRUE, control = control)
row <- summary(fit)$coefficients["time", ]
vc <- as.data.frame(VarCorr(fit))
slope_sd <- function(group) vc$sdcor[vc$grp == group & vc$var1 == "time" & is.na(vc$var2)]
out <- data.frame(beta = row[["Estimate"]], se = row[["Std. Error"]], df = row[["df"]],
                  p = row[["Pr(>|t|)"]], singular = isSingular(fit),
                  sd_patient_slope = slope_sd("patient_id"),
                  sd_lesion_slope = slope_sd("patient_id:lesion_id"),
                  sd_residual = sigma(fit))
write.csv(out, args[2], row.names = FALSE)
