# Weighted proportional-odds models of the 90-day mRS (ANALYSIS.md §13) with R's MASS::polr.
#
# Run from the project root:   Rscript tests/reference/make_polr.R   (after make_reference.R)
# Needs: r-base-core, r-cran-mass (Debian packages). Writes tests/reference/expected/<cohort>/polr_ATO_75.csv:
# the cutpoints (zeta) and coefficients of polr(factor(mrs_90d) ~ trt, weights = w) and of
# ~ trt * high (high = stenosis > 75), unadjusted (unit weights) and with the ATO weights of
# make_reference.R. Written independently of the Python library.

suppressPackageStartupMessages(library(MASS))
options(digits = 17)
for (cohort in c("synthetic", "missing", "centers40")) {
  dir <- file.path("tests/reference/expected", cohort)
  path <- switch(cohort, synthetic = "data/synthetic_cohort.csv", file.path("tests/reference/cohorts", paste0(cohort, ".csv")))
  d <- read.csv(path, na.strings = "", stringsAsFactors = FALSE)
  weights <- read.csv(file.path(dir, "weights.csv"), stringsAsFactors = FALSE)
  s <- d[match(weights$patient_id, d$patient_id), ]
  s$w_ATO <- weights$w_ATO
  s <- s[!is.na(s$mrs_90d), ]
  s$trt <- s$rescue_stenting
  s$high <- as.numeric(s$stenosis_pct > 75)
  s$unit <- 1
  out <- list()
  for (analysis in c("unadjusted", "iptw")) {
    s$wt <- if (analysis == "iptw") s$w_ATO else s$unit
    for (model in c("overall", "interaction")) {
      f <- if (model == "overall") factor(mrs_90d) ~ trt else factor(mrs_90d) ~ trt * high
      fit <- suppressWarnings(polr(f, data = s, weights = wt, Hess = TRUE,
                                   control = list(reltol = 1e-15, maxit = 1000)))
      est <- c(fit$zeta, coef(fit))
      out[[length(out) + 1]] <- data.frame(analysis = analysis, model = model, term = names(est),
                                           estimate = unname(est), loglik = as.numeric(logLik(fit)))
    }
  }
  write.csv(do.call(rbind, out), file.path(dir, "polr_ATO_75.csv"), row.names = FALSE)
}
writeLines(paste("MASS", packageVersion("MASS")), "tests/reference/expected/VERSIONS_polr.txt")
