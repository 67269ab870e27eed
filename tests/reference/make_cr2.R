# CR2 cluster-robust inference (ANALYSIS.md §12) computed with R's clubSandwich.
#
# Run from the project root:   Rscript tests/reference/make_cr2.R   (after make_reference.R)
# Needs: r-base-core, r-cran-clubsandwich (Debian packages). Writes
# tests/reference/expected/<cohort>/cluster_cr2_ATO_75.csv; the test suite reads it and never needs R.
#
# For every weighted Table 2 row (ATO weights of make_reference.R, cutoff 75): the same lm / Poisson
# glm as Table 2, clubSandwich::vcovCR(type = "CR2", cluster = center) with its default working
# model for weighted fits, and clubSandwich::coef_test(test = "Satterthwaite") of the treatment
# coefficient (t intervals on the Satterthwaite df); p-interaction from coef_test(trt:high). The
# effect above the cutoff is the treatment coefficient of the same model coded with `low`
# (y ~ trt * low: the same column space, hence the same CR2 and df), because linear_contrast()
# of clubSandwich 0.5.8 stops on weighted lm fits (it uses an undefined `q`).
# Where a subgroup has a cell without events, the estimable subgroup is fitted on its own rows.
# Written independently of the Python library.

suppressPackageStartupMessages(library(clubSandwich))

outcomes <- c("mrs_90d", "mrs_0_2", "mrs_0_3", "final_mtici_2b3", "reocclusion", "sich", "death_90d")
cohorts <- c("synthetic", "missing", "centers40")
tight <- glm.control(epsilon = 1e-14, maxit = 100)
level <- 0.95
cutoff <- 75

# glm's bread (summary's cov.unscaled) comes from the QR of the last IRLS step, at the mean of the
# step before; refitting from the converged coefficients puts it at the converged mean.
fit_model <- function(formula, d, binary) {
  if (!binary) return(lm(formula, data = d, weights = wt))
  first <- suppressWarnings(glm(formula, family = poisson(link = "log"), data = d, weights = wt, control = tight))
  suppressWarnings(glm(formula, family = poisson(link = "log"), data = d, weights = wt, control = tight,
                       start = coef(first)))
}

cell_ok <- function(y, trt, binary) {
  length(y) > 0 && length(unique(trt)) == 2 && (!binary || (sum(y[trt == 0]) > 0 && sum(y[trt == 1]) > 0))
}

treatment <- function(fit, d, binary) {
  r <- coef_test(fit, vcov = vcovCR(fit, cluster = d$center, type = "CR2"), test = "Satterthwaite")["trt", ]
  q <- qt(1 - (1 - level) / 2, r$df_Satt)
  est <- r$beta; lo <- est - q * r$SE; hi <- est + q * r$SE
  if (binary) { est <- exp(est); lo <- exp(lo); hi <- exp(hi) }
  c(est, lo, hi, r$p_Satt, r$df_Satt, r$SE)
}

cr2_table <- function(s, w) {
  out <- list()
  for (o in outcomes) {
    binary <- o != "mrs_90d"
    known <- !is.na(s[[o]])
    d <- data.frame(y = s[[o]][known], trt = s$rescue_stenting[known], center = s$center[known],
                    high = as.numeric(s$stenosis_pct[known] > cutoff), wt = w[known])
    d$low <- 1 - d$high
    row <- function(sub, r, pint) data.frame(outcome = o, subgroup = sub, measure = if (binary) "RR" else "ATE",
      estimate = r[1], ci_lower = r[2], ci_upper = r[3], p_value = r[4], df = r[5], std_error = r[6],
      p_interaction = pint)
    none <- rep(NA, 6)
    r <- if (cell_ok(d$y, d$trt, binary)) treatment(fit_model(y ~ trt, d, binary), d, binary) else none
    out[[length(out) + 1]] <- row("overall", r, NA)
    lo <- d$high == 0; hi <- d$high == 1
    ok_lo <- cell_ok(d$y[lo], d$trt[lo], binary); ok_hi <- cell_ok(d$y[hi], d$trt[hi], binary)
    if (ok_lo && ok_hi) {
      fit <- fit_model(y ~ trt * high, d, binary)
      r_lo <- treatment(fit, d, binary); r_hi <- treatment(fit_model(y ~ trt * low, d, binary), d, binary)
      test <- coef_test(fit, vcov = vcovCR(fit, cluster = d$center, type = "CR2"), test = "Satterthwaite")
      pint <- test["trt:high", "p_Satt"]
    } else {
      alone <- function(rows) treatment(fit_model(y ~ trt, d[rows, ], binary), d[rows, ], binary)
      r_lo <- if (ok_lo) alone(lo) else none
      r_hi <- if (ok_hi) alone(hi) else none
      pint <- NA
    }
    out[[length(out) + 1]] <- row("low", r_lo, pint)
    out[[length(out) + 1]] <- row("high", r_hi, pint)
  }
  do.call(rbind, out)
}

options(digits = 17)
for (cohort in cohorts) {
  dir <- file.path("tests/reference/expected", cohort)
  path <- switch(cohort, synthetic = "data/synthetic_cohort.csv", file.path("tests/reference/cohorts", paste0(cohort, ".csv")))
  d <- read.csv(path, na.strings = "", stringsAsFactors = FALSE)
  d$mrs_0_2 <- ifelse(is.na(d$mrs_90d), NA, as.numeric(d$mrs_90d <= 2))
  d$mrs_0_3 <- ifelse(is.na(d$mrs_90d), NA, as.numeric(d$mrs_90d <= 3))
  weights <- read.csv(file.path(dir, "weights.csv"), stringsAsFactors = FALSE)
  s <- d[match(weights$patient_id, d$patient_id), ]
  write.csv(cr2_table(s, weights$w_ATO), file.path(dir, "cluster_cr2_ATO_75.csv"), row.names = FALSE, na = "")
}
writeLines(paste("clubSandwich", packageVersion("clubSandwich")),
           "tests/reference/expected/VERSIONS_cr2.txt")
