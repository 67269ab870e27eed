# Reference results computed with the paper's R toolchain (glm, lm, sandwich, lmtest).
#
# Run from the project root:   Rscript tests/reference/make_reference.R
# Needs: r-base-core, r-cran-sandwich, r-cran-lmtest, r-cran-lme4 (Debian packages). The test suite reads the
# CSV files this script writes to tests/reference/expected/<cohort>/ and never needs R itself.
#
# Conventions (ANALYSIS.md): complete cases on treatment, stenosis and the propensity
# covariates; logistic propensity model; weights normalised to mean 1; SMD with the unweighted
# pooled SD; lm + vcovHC + coeftest/coefci (t, residual df) for the mRS, modified Poisson glm
# (normal) for binary outcomes; high = stenosis > cutoff; subgroup effects by linear combinations.
#
# Written independently of the Python library: nothing here is translated from it.

suppressPackageStartupMessages({
  library(sandwich)
  library(lmtest)
  library(lme4)
  library(splines)
})

ps_covariates <- c("age", "sex_female", "nihss", "aspects", "premorbid_mrs", "m1_occlusion",
                   "stenosis_pct", "mtici_2b3_after_mt", "hypertension", "diabetes",
                   "atrial_fibrillation", "general_anesthesia")
outcomes <- c("mrs_90d", "mrs_0_2", "mrs_0_3", "final_mtici_2b3", "reocclusion", "sich", "death_90d")
cutoffs <- seq(40, 90, by = 5)
tight <- glm.control(epsilon = 1e-14, maxit = 100)
level <- 0.95

cohorts <- list(
  synthetic = "data/synthetic_cohort.csv",
  missing = "tests/reference/cohorts/missing.csv",
  small = "tests/reference/cohorts/small.csv",
  centers40 = "tests/reference/cohorts/centers40.csv"
)
sensitivity_cohorts <- c("synthetic", "missing", "centers40")

write <- function(df, cohort, name) {
  dir <- file.path("tests/reference/expected", cohort)
  dir.create(dir, showWarnings = FALSE, recursive = TRUE)
  write.csv(df, file.path(dir, paste0(name, ".csv")), row.names = FALSE, na = "")
}

full <- function(x) format(x, digits = 17)

# ---------------------------------------------------------------- data
read_cohort <- function(path) {
  d <- read.csv(path, na.strings = "", stringsAsFactors = FALSE)
  d$mrs_0_2 <- ifelse(is.na(d$mrs_90d), NA, as.numeric(d$mrs_90d <= 2))
  d$mrs_0_3 <- ifelse(is.na(d$mrs_90d), NA, as.numeric(d$mrs_90d <= 3))
  d
}

analysis_sample <- function(d) {
  keep <- complete.cases(d[, c("rescue_stenting", "stenosis_pct", ps_covariates)])
  d[keep, ]
}

# ---------------------------------------------------------------- weights
propensity <- function(s) {
  f <- as.formula(paste("rescue_stenting ~", paste(ps_covariates, collapse = " + ")))
  glm(f, family = binomial, data = s, control = tight)
}

weights_for <- function(e, t, estimand) {
  w <- switch(estimand,
    ATO = ifelse(t == 1, 1 - e, e),
    ATE = ifelse(t == 1, 1 / e, 1 / (1 - e)),
    ATT = ifelse(t == 1, 1, e / (1 - e)),
    ATM = pmin(e, 1 - e) / ifelse(t == 1, e, 1 - e))
  w / mean(w)
}

# The richer specification of the sensitivity analyses (formulaic's bs() is R's splines::bs()).
rich_formula <- rescue_stenting ~ bs(age, df = 3) + sex_female + nihss + I(nihss^2) + aspects +
  premorbid_mrs + m1_occlusion + stenosis_pct + I(stenosis_pct^2) + mtici_2b3_after_mt +
  mtici_2b3_after_mt:stenosis_pct + hypertension + diabetes + atrial_fibrillation + general_anesthesia

# ---------------------------------------------------------------- balance
is_bin <- function(x) length(unique(x)) == 2 && all(x %in% c(0, 1))
group_var <- function(x, bin) if (bin) mean(x) * (1 - mean(x)) else var(x)
wvar <- function(x, w) {           # cobalt's weighted variance (reliability weights)
  v <- w / sum(w); m <- sum(v * x)
  sum(v * (x - m)^2) / (1 - sum(v^2))
}
balance <- function(s, w) {
  t <- s$rescue_stenting
  rows <- lapply(ps_covariates, function(c) {
    x <- s[[c]]; bin <- is_bin(x)
    den <- sqrt((group_var(x[t == 1], bin) + group_var(x[t == 0], bin)) / 2)
    d_u <- mean(x[t == 1]) - mean(x[t == 0])
    d_w <- weighted.mean(x[t == 1], w[t == 1]) - weighted.mean(x[t == 0], w[t == 0])
    vr_u <- if (bin) NA else var(x[t == 1]) / var(x[t == 0])
    vr_w <- if (bin) NA else wvar(x[t == 1], w[t == 1]) / wvar(x[t == 0], w[t == 0])
    data.frame(covariate = c, smd_unweighted = d_u / den, smd_weighted = d_w / den,
               variance_ratio_unweighted = vr_u, variance_ratio_weighted = vr_w)
  })
  do.call(rbind, rows)
}

# ---------------------------------------------------------------- effects
fit_model <- function(formula, d, wt, binary) {
  d$wt <- wt
  if (binary) suppressWarnings(glm(formula, family = poisson(link = "log"), data = d, weights = wt, control = tight))
  else lm(formula, data = d, weights = wt)
}

lincomb <- function(fit, V, L, binary) {
  est <- sum(L * coef(fit)); se <- sqrt(drop(t(L) %*% V %*% L))
  if (binary) {
    q <- qnorm(1 - (1 - level) / 2); p <- 2 * pnorm(-abs(est / se))
    c(exp(est), exp(est - q * se), exp(est + q * se), p)
  } else {
    df <- fit$df.residual; q <- qt(1 - (1 - level) / 2, df); p <- 2 * pt(-abs(est / se), df)
    c(est, est - q * se, est + q * se, p)
  }
}

# Subgroup effect when the other subgroup has a cell without events or patients: the
# interaction glm diverges there, so the estimable subgroup is fitted on its own rows. For a
# model saturated in the cells this is the same estimate and, for HC0/HC2/HC3, the same
# sandwich variance (cells are independent and hat values are w_i / W_cell); HC1's factor
# n / (n - k) is converted from the subgroup model (n_sub, 2) to the interaction model (n, 4).
subgroup_alone <- function(d, wt, rows, hc, binary, n_all, k_all) {
  fit <- fit_model(y ~ trt, d[rows, ], wt[rows], binary)
  V <- vcovHC(fit, type = hc)
  if (hc == "HC1") {
    n_sub <- sum(rows)
    V <- V / (n_sub / (n_sub - 2)) * (n_all / (n_all - k_all))
  }
  lincomb(fit, V, c(0, 1), binary)
}

cell_ok <- function(y, trt, binary) {
  length(y) > 0 && length(unique(trt)) == 2 && (!binary || (sum(y[trt == 0]) > 0 && sum(y[trt == 1]) > 0))
}

table2 <- function(s, w, cutoff, hc) {
  out <- list()
  for (o in outcomes) {
    binary <- o != "mrs_90d"
    known <- !is.na(s[[o]])
    d <- data.frame(y = s[[o]][known], trt = s$rescue_stenting[known],
                    high = as.numeric(s$stenosis_pct[known] > cutoff))
    for (analysis in c("unadjusted", "iptw")) {
      wt <- if (analysis == "unadjusted") rep(1, nrow(d)) else w[known]
      measure <- if (binary) "RR" else "ATE"
      row <- function(sub, r, pint, n) data.frame(outcome = o, analysis = analysis, subgroup = sub,
        measure = measure, estimate = r[1], ci_lower = r[2], ci_upper = r[3], p_value = r[4],
        p_interaction = pint, n = n)
      # overall
      r <- if (cell_ok(d$y, d$trt, binary)) {
        fit <- fit_model(y ~ trt, d, wt, binary)
        lincomb(fit, vcovHC(fit, type = hc), c(0, 1), binary)
      } else rep(NA, 4)
      out[[length(out) + 1]] <- row("overall", r, NA, nrow(d))
      # by subgroup
      lo <- d$high == 0; hi <- d$high == 1
      ok_lo <- cell_ok(d$y[lo], d$trt[lo], binary); ok_hi <- cell_ok(d$y[hi], d$trt[hi], binary)
      if (ok_lo && ok_hi) {
        fit <- fit_model(y ~ trt * high, d, wt, binary)
        V <- vcovHC(fit, type = hc)
        r_lo <- lincomb(fit, V, c(0, 1, 0, 0), binary)
        r_hi <- lincomb(fit, V, c(0, 1, 0, 1), binary)
        pint <- coeftest(fit, vcov. = V)["trt:high", 4]
      } else {
        k_all <- length(unique(paste(d$trt, d$high)))
        r_lo <- if (ok_lo) subgroup_alone(d, wt, lo, hc, binary, nrow(d), k_all) else rep(NA, 4)
        r_hi <- if (ok_hi) subgroup_alone(d, wt, hi, hc, binary, nrow(d), k_all) else rep(NA, 4)
        pint <- NA
      }
      out[[length(out) + 1]] <- row("low", r_lo, pint, sum(lo))
      out[[length(out) + 1]] <- row("high", r_hi, pint, sum(hi))
    }
  }
  do.call(rbind, out)
}

sweep <- function(s, w, hc, min_arm = 10) {
  known <- !is.na(s$mrs_90d)
  d <- data.frame(y = s$mrs_90d[known], trt = s$rescue_stenting[known], st = s$stenosis_pct[known])
  wt <- w[known]
  rows <- lapply(cutoffs, function(c) {
    d$high <- as.numeric(d$st > c)
    counts <- table(factor(d$trt, 0:1), factor(d$high, 0:1))
    base <- data.frame(cutoff = c, n_low = sum(d$high == 0), n_high = sum(d$high == 1))
    if (all(counts > 0)) {
      fit <- fit_model(y ~ trt * high, d, wt, FALSE)
      V <- vcovHC(fit, type = hc)
      lo <- lincomb(fit, V, c(0, 1, 0, 0), FALSE); hi <- lincomb(fit, V, c(0, 1, 0, 1), FALSE)
      ct <- coeftest(fit, vcov. = V)
      cbind(base, ate_low = lo[1], ate_low_ci_lower = lo[2], ate_low_ci_upper = lo[3], ate_low_p = lo[4],
            ate_high = hi[1], ate_high_ci_lower = hi[2], ate_high_ci_upper = hi[3], ate_high_p = hi[4],
            difference = coef(fit)["trt:high"], p_interaction = ct["trt:high", 4],
            eligible = min(counts) >= min_arm)
    } else {
      cbind(base, ate_low = NA, ate_low_ci_lower = NA, ate_low_ci_upper = NA, ate_low_p = NA,
            ate_high = NA, ate_high_ci_lower = NA, ate_high_ci_upper = NA, ate_high_p = NA,
            difference = NA, p_interaction = NA, eligible = FALSE)
    }
  })
  out <- do.call(rbind, rows)
  el <- which(out$eligible)
  out$selected <- FALSE
  if (length(el)) out$selected[el[which.max(abs(out$difference[el]))]] <- TRUE
  out
}

continuous <- function(s, w, hc) {
  known <- !is.na(s$mrs_90d)
  d <- data.frame(y = s$mrs_90d[known], trt = s$rescue_stenting[known], st = s$stenosis_pct[known])
  fit <- fit_model(y ~ trt * st, d, w[known], FALSE)
  V <- vcovHC(fit, type = hc)
  ci <- coefci(fit, vcov. = V, level = level)
  ct <- coeftest(fit, vcov. = V)
  b1 <- coef(fit)[["trt"]]; b3 <- coef(fit)[["trt:st"]]
  v11 <- V["trt", "trt"]; v13 <- V["trt", "trt:st"]; v33 <- V["trt:st", "trt:st"]
  q <- qt(1 - (1 - level) / 2, fit$df.residual)
  cross <- -b1 / b3
  g <- c(-1 / b3, b1 / b3^2)
  se <- sqrt(drop(t(g) %*% matrix(c(v11, v13, v13, v33), 2) %*% g))
  a <- b3^2 - q^2 * v33; bb <- 2 * (b1 * b3 - q^2 * v13); cc <- b1^2 - q^2 * v11
  roots <- if (a > 0) sort((-bb + c(-1, 1) * sqrt(bb^2 - 4 * a * cc)) / (2 * a)) else c(-Inf, Inf)
  data.frame(interaction_beta = b3, interaction_ci_lower = ci["trt:st", 1], interaction_ci_upper = ci["trt:st", 2],
             interaction_p = ct["trt:st", 4], crossing_point = cross,
             crossing_ci_lower = cross - q * se, crossing_ci_upper = cross + q * se,
             fieller_ci_lower = roots[1], fieller_ci_upper = roots[2], fieller_bounded = a > 0,
             b_treat = b1, b_intercept = coef(fit)[["(Intercept)"]], b_stenosis = coef(fit)[["st"]])
}

table1_tests <- function(s) {
  t <- s$rescue_stenting
  cont <- c("age", "premorbid_mrs", "nihss", "aspects", "onset_to_end_min", "stenosis_pct", "mrs_90d")
  bin <- c("sex_female", "hypertension", "dyslipidemia", "diabetes", "atrial_fibrillation",
           "coronary_artery_disease", "prior_stroke", "prior_antiplatelets", "prior_anticoagulants",
           "left_side", "m1_occlusion", "ivt", "general_anesthesia", "mtici_2b3_after_mt",
           "mrs_0_2", "mrs_0_3", "final_mtici_2b3", "reocclusion", "sich", "death_90d")
  rows <- list()
  for (v in cont) {
    x0 <- s[[v]][t == 0]; x1 <- s[[v]][t == 1]
    x0 <- x0[!is.na(x0)]; x1 <- x1[!is.na(x1)]
    q0 <- quantile(x0, c(.25, .5, .75)); q1 <- quantile(x1, c(.25, .5, .75))
    rows[[length(rows) + 1]] <- data.frame(variable = v, mt_only_median = q0[2], mt_only_q1 = q0[1],
      mt_only_q3 = q0[3], mt_rs_median = q1[2], mt_rs_q1 = q1[1], mt_rs_q3 = q1[3], mt_only_n = NA, mt_rs_n = NA,
      p_value = suppressWarnings(wilcox.test(x0, x1)$p.value))
  }
  for (v in bin) {
    x <- s[[v]]; k <- !is.na(x)
    tab <- table(factor(t[k], 0:1), factor(x[k], 0:1))
    rows[[length(rows) + 1]] <- data.frame(variable = v, mt_only_median = NA, mt_only_q1 = NA, mt_only_q3 = NA,
      mt_rs_median = NA, mt_rs_q1 = NA, mt_rs_q3 = NA, mt_only_n = tab["0", "1"], mt_rs_n = tab["1", "1"],
      p_value = fisher.test(tab)$p.value)
  }
  do.call(rbind, rows)
}

# ---------------------------------------------------------------- center sensitivity
lmer_tight <- lmerControl(optCtrl = list(xtol_abs = 1e-12, ftol_abs = 1e-12))

# lmer(mRS ~ t (* high) + (1 | center), weights = w, REML = TRUE): fixed effects, model-based SEs,
# variance components, REML criterion, and the subgroup effects with Wald (normal) intervals.
center_lmm <- function(s, w, cutoff) {
  known <- !is.na(s$mrs_90d)
  d <- data.frame(y = s$mrs_90d[known], trt = s$rescue_stenting[known], center = s$center[known],
                  high = as.numeric(s$stenosis_pct[known] > cutoff), wt = w[known])
  z <- qnorm(1 - (1 - level) / 2)
  out <- list()
  for (model in c("overall", "interaction")) {
    f <- if (model == "overall") y ~ trt + (1 | center) else y ~ trt * high + (1 | center)
    m <- lmer(f, data = d, weights = wt, REML = TRUE, control = lmer_tight)
    V <- as.matrix(vcov(m)); b <- fixef(m)
    vc <- as.data.frame(VarCorr(m))
    combos <- if (model == "overall") list(overall = c(0, 1)) else list(low = c(0, 1, 0, 0), high = c(0, 1, 0, 1))
    for (sub in names(combos)) {
      L <- combos[[sub]]; est <- sum(L * b); se <- sqrt(drop(t(L) %*% V %*% L))
      out[[length(out) + 1]] <- data.frame(model = model, subgroup = sub, estimate = est, std_error = se,
        ci_lower = est - z * se, ci_upper = est + z * se, p_value = 2 * pnorm(-abs(est / se)),
        center_variance = vc$vcov[vc$grp == "center"], residual_variance = vc$vcov[vc$grp == "Residual"],
        reml_criterion = REMLcrit(m), b_treat = b[["trt"]], se_treat = sqrt(V["trt", "trt"]))
    }
  }
  do.call(rbind, out)
}

# glmer(y ~ t * high + (1 | center), family = poisson), with unit weights or with the given
# prior weights: the fixed effects (and SEs and theta) the Laplace implementation must reproduce.
center_glmm <- function(s, cutoff, w = NULL) {
  out <- list()
  for (o in outcomes[outcomes != "mrs_90d"]) {
    known <- !is.na(s[[o]])
    d <- data.frame(y = s[[o]][known], trt = s$rescue_stenting[known], center = s$center[known],
                    high = as.numeric(s$stenosis_pct[known] > cutoff))
    d$wt <- if (is.null(w)) 1 else w[known]
    cells <- tapply(d$y, list(d$trt, d$high), sum)
    for (model in c("overall", "interaction")) {
      if (model == "interaction" && (any(is.na(cells)) || any(cells == 0))) next
      if (model == "overall" && any(tapply(d$y, d$trt, sum) == 0)) next
      f <- if (model == "overall") y ~ trt + (1 | center) else y ~ trt * high + (1 | center)
      # glmer's default stopping rule can end short of the maximum (the synthetic cohort's weighted
      # death model: log-likelihood -154.9841 by default, -154.9839 with these tolerances)
      m <- suppressWarnings(suppressMessages(glmer(f, data = d, family = poisson, weights = wt,
        control = glmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5, rhoend = 1e-12),
                               tolPwrss = 1e-12))))
      b <- fixef(m); se <- sqrt(diag(as.matrix(vcov(m))))
      se_rx <- sqrt(diag(as.matrix(suppressWarnings(vcov(m, use.hessian = FALSE)))))
      out[[length(out) + 1]] <- data.frame(outcome = o, model = model, term = names(b), estimate = unname(b),
        std_error = unname(se), std_error_rx = unname(se_rx), theta = unname(getME(m, "theta")),
        singular = isSingular(m))
    }
  }
  do.call(rbind, out)
}

# vcovCL(fit, cluster = ~ center, type = "HC0", cadjust = TRUE) on every weighted Table 2 row.
# Where a subgroup has a cell without events, the estimable subgroup is fitted on its own rows
# and its meat adjustment converted from G_sub / (G_sub - 1) to G / (G - 1) (same cells, same
# cluster sums).
cluster_table <- function(s, w, cutoff) {
  out <- list()
  for (o in outcomes) {
    binary <- o != "mrs_90d"
    known <- !is.na(s[[o]])
    d <- data.frame(y = s[[o]][known], trt = s$rescue_stenting[known], center = s$center[known],
                    high = as.numeric(s$stenosis_pct[known] > cutoff))
    wt <- w[known]
    G <- length(unique(d$center))
    row <- function(sub, r, pint) data.frame(outcome = o, subgroup = sub, measure = if (binary) "RR" else "ATE",
      estimate = r[1], ci_lower = r[2], ci_upper = r[3], p_value = r[4], p_interaction = pint)
    r <- if (cell_ok(d$y, d$trt, binary)) {
      fit <- fit_model(y ~ trt, d, wt, binary)
      lincomb(fit, vcovCL(fit, cluster = d$center, type = "HC0", cadjust = TRUE), c(0, 1), binary)
    } else rep(NA, 4)
    out[[length(out) + 1]] <- row("overall", r, NA)
    lo <- d$high == 0; hi <- d$high == 1
    ok_lo <- cell_ok(d$y[lo], d$trt[lo], binary); ok_hi <- cell_ok(d$y[hi], d$trt[hi], binary)
    if (ok_lo && ok_hi) {
      fit <- fit_model(y ~ trt * high, d, wt, binary)
      V <- vcovCL(fit, cluster = d$center, type = "HC0", cadjust = TRUE)
      r_lo <- lincomb(fit, V, c(0, 1, 0, 0), binary); r_hi <- lincomb(fit, V, c(0, 1, 0, 1), binary)
      pint <- coeftest(fit, vcov. = V)["trt:high", 4]
    } else {
      alone <- function(rows) {
        fit <- fit_model(y ~ trt, d[rows, ], wt[rows], binary)
        V <- vcovCL(fit, cluster = d$center[rows], type = "HC0", cadjust = FALSE) * G / (G - 1)
        lincomb(fit, V, c(0, 1), binary)
      }
      r_lo <- if (ok_lo) alone(lo) else rep(NA, 4)
      r_hi <- if (ok_hi) alone(hi) else rep(NA, 4)
      pint <- NA
    }
    out[[length(out) + 1]] <- row("low", r_lo, pint)
    out[[length(out) + 1]] <- row("high", r_hi, pint)
  }
  do.call(rbind, out)
}

# ---------------------------------------------------------------- run
options(digits = 17)
for (cohort in names(cohorts)) {
  s <- analysis_sample(read_cohort(cohorts[[cohort]]))
  fit <- propensity(s)
  e <- fitted(fit)
  t <- s$rescue_stenting
  W <- sapply(c("ATO", "ATE", "ATT", "ATM"), function(est) weights_for(e, t, est))
  write(data.frame(patient_id = s$patient_id, propensity = e, w_ATO = W[, "ATO"], w_ATE = W[, "ATE"],
                   w_ATT = W[, "ATT"], w_ATM = W[, "ATM"]), cohort, "weights")
  write(data.frame(term = names(coef(fit)), estimate = unname(coef(fit))), cohort, "propensity_coefficients")
  write(table1_tests(s), cohort, "table1")
  rich <- glm(rich_formula, family = binomial, data = s, control = tight)
  write(data.frame(patient_id = s$patient_id, propensity = fitted(rich)), cohort, "propensity_rich")
  for (est in c("ATO", "ATE")) write(balance(s, W[, est]), cohort, paste0("balance_", est))
  for (hc in c("HC0", "HC1", "HC2", "HC3")) {
    write(table2(s, W[, "ATO"], 75, hc), cohort, paste0("table2_ATO_", hc, "_75"))
    write(sweep(s, W[, "ATO"], hc), cohort, paste0("sweep_ATO_", hc))
    write(continuous(s, W[, "ATO"], hc), cohort, paste0("continuous_ATO_", hc))
  }
  for (est in c("ATE", "ATT", "ATM")) {
    write(table2(s, W[, est], 75, "HC0"), cohort, paste0("table2_", est, "_HC0_75"))
    write(continuous(s, W[, est], "HC0"), cohort, paste0("continuous_", est, "_HC0"))
  }
  write(table2(s, W[, "ATO"], 70, "HC0"), cohort, "table2_ATO_HC0_70")
  if (cohort %in% sensitivity_cohorts) {
    write(center_lmm(s, W[, "ATO"], 75), cohort, "center_lmm_ATO_75")
    write(center_glmm(s, 75), cohort, "center_glmm_unweighted_75")
    write(center_glmm(s, 75, W[, "ATO"]), cohort, "center_glmm_ATO_75")
    write(cluster_table(s, W[, "ATO"], 75), cohort, "cluster_ATO_75")
  }
  cat(cohort, ": n =", nrow(s), "\n")
}
writeLines(c(paste("R", getRversion()), paste("sandwich", packageVersion("sandwich")),
             paste("lmtest", packageVersion("lmtest")), paste("lme4", packageVersion("lme4"))),
           "tests/reference/expected/VERSIONS.txt")
