# The resampling procedure of analysis_lib.resample written with R's glm + lm + sandwich, to
# compare speeds (benchmarks/benchmark_resample.py runs it when Rscript is available).
#
#   Rscript benchmarks/resample_procedure.R [replicates] [with_sandwich]
#
# One replicate = one bootstrap replicate (propensity refit by glm, overlap weights, lm of
# mRS ~ t * high at each of 11 cutoffs with eligibility, selection, continuous lm and crossing
# point) plus one null replicate (wild bootstrap outcomes, the 11 lm fits and the selection).
# With with_sandwich = 1 (the default) every lm also gets sandwich::vcovHC(type = "HC0"), as a
# sweep that reports intervals does. Prints seconds per replicate.
suppressPackageStartupMessages(library(sandwich))
args <- commandArgs(trailingOnly = TRUE)
R <- if (length(args) >= 1) as.integer(args[1]) else 200
with_sandwich <- if (length(args) >= 2) as.integer(args[2]) == 1 else TRUE

d <- read.csv("data/synthetic_cohort.csv", na.strings = "")
covs <- c("age", "sex_female", "nihss", "aspects", "premorbid_mrs", "m1_occlusion", "stenosis_pct",
          "mtici_2b3_after_mt", "hypertension", "diabetes", "atrial_fibrillation", "general_anesthesia")
ps_formula <- as.formula(paste("rescue_stenting ~", paste(covs, collapse = " + ")))
cutoffs <- seq(40, 90, by = 5)
min_arm <- 10

sweep <- function(b, w, y) {
  b$y <- y
  diffs <- sapply(cutoffs, function(c) {
    b$high <- as.numeric(b$stenosis_pct > c)
    if (min(table(factor(b$rescue_stenting, 0:1), factor(b$high, 0:1))) < min_arm) return(NA)
    fit <- lm(y ~ rescue_stenting * high, data = b, weights = w)
    if (with_sandwich) V <- vcovHC(fit, type = "HC0")
    coef(fit)[4]
  })
  ok <- !is.na(diffs)
  if (!any(ok)) NA else diffs[ok][which.max(abs(diffs[ok]))]
}

set.seed(1)
n <- nrow(d)
ps0 <- fitted(glm(ps_formula, binomial, d))
w0 <- ifelse(d$rescue_stenting == 1, 1 - ps0, ps0)
null_fit <- lm(mrs_90d ~ rescue_stenting + poly(stenosis_pct, 3), data = d, weights = w0)
f0 <- fitted(null_fit); r0 <- residuals(null_fit)

elapsed <- system.time(for (r in seq_len(R)) {
  b <- d[sample.int(n, n, replace = TRUE), ]
  ps <- fitted(glm(ps_formula, binomial, b))
  w <- ifelse(b$rescue_stenting == 1, 1 - ps, ps)
  selected <- sweep(b, w, b$mrs_90d)
  cont <- lm(mrs_90d ~ rescue_stenting * stenosis_pct, data = b, weights = w)
  if (with_sandwich) V <- vcovHC(cont, type = "HC0")
  crossing <- -coef(cont)[2] / coef(cont)[4]
  ystar <- f0 + sample(c(-1, 1), n, replace = TRUE) * r0
  null_stat <- abs(sweep(d, w0, ystar))
})[["elapsed"]]
cat(sprintf("R %s, %d replicates, sandwich %s: %.4f s per replicate\n", getRversion(), R, with_sandwich, elapsed / R))
