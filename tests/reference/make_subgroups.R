# Reference results for the causal subgroup analysis (ANALYSIS.md §11), computed in R without the
# Python library: balance within the stenosis subgroups under the overall weights and under
# weights from one propensity model per subgroup, and Table 2's subgroup rows under the latter.
#
# Run from the project root:   Rscript tests/reference/make_subgroups.R
# Needs: r-base-core, r-cran-sandwich, r-cran-lmtest, r-cran-numderiv (Debian packages). Writes
# tests/reference/expected/<cohort>/subgroup_*.csv; the test suite never needs R.
#
# Within weights: glm(rescue_stenting ~ covariates, family = binomial) fitted on the rows of each
# subgroup (low: stenosis <= cutoff, high: > cutoff), overlap (ATO) weights from its fitted
# propensities, normalised to mean 1 over the analysis sample. A subgroup model is flagged
# `estimable = FALSE` when the subgroup lacks an arm, has no more patients than terms, or its fit
# separates the arms (a fitted propensity within 1e-8 of 0 or 1, or no convergence); then no
# number is written. Effects: lm(y ~ t * high, weights = w) with sandwich::vcovHC(type = "HC0")
# and lmtest::coeftest (t, residual df) for the mRS; glm(poisson(log)) with HC0 and normal
# quantiles for mRS 0-2. M-estimation: the logistic scores of both subgroup models stacked with
# the weighted outcome score, Jacobian by numDeriv, sandwich A^-1 B A^-T over the whole stack.

suppressPackageStartupMessages({
  library(sandwich)
  library(lmtest)
  library(numDeriv)
})

ps_covariates <- c("age", "sex_female", "nihss", "aspects", "premorbid_mrs", "m1_occlusion",
                   "stenosis_pct", "mtici_2b3_after_mt", "hypertension", "diabetes",
                   "atrial_fibrillation", "general_anesthesia")
cohorts <- list(synthetic = "data/synthetic_cohort.csv", missing = "tests/reference/cohorts/missing.csv",
                centers40 = "tests/reference/cohorts/centers40.csv")
cutoffs <- seq(40, 90, by = 5)
tight <- glm.control(epsilon = 1e-14, maxit = 100)

read_sample <- function(path) {
  d <- read.csv(path, na.strings = "", stringsAsFactors = FALSE)
  d$mrs_0_2 <- ifelse(is.na(d$mrs_90d), NA, as.numeric(d$mrs_90d <= 2))
  d[complete.cases(d[, c("rescue_stenting", "stenosis_pct", ps_covariates)]), ]
}

ato <- function(e, t) ifelse(t == 1, 1 - e, e)

fit_ps <- function(rows) {
  X <- cbind(1, as.matrix(rows[, ps_covariates]))
  t <- rows$rescue_stenting
  if (length(unique(t)) < 2 || nrow(X) <= ncol(X)) return(NULL)
  fit <- suppressWarnings(glm.fit(X, t, family = binomial(), control = tight))
  keep <- !is.na(fit$coefficients)  # a column constant in the subgroup: NA, as glm reports it
  p <- fit$fitted.values
  if (!fit$converged || any(p < 1e-8 | p > 1 - 1e-8)) return(NULL)
  list(p = p, Z = X[, keep, drop = FALSE])
}

within <- function(d, cutoff) {
  high <- d$stenosis_pct > cutoff
  p <- rep(NA_real_, nrow(d))
  Z <- NULL
  for (g in c(FALSE, TRUE)) {
    fit <- fit_ps(d[high == g, ])
    if (is.null(fit)) return(NULL)
    p[high == g] <- fit$p
    block <- matrix(0, nrow(d), ncol(fit$Z))
    block[high == g, ] <- fit$Z
    Z <- cbind(Z, block)
  }
  w <- ato(p, d$rescue_stenting)
  list(w = w / mean(w), p = p, Z = Z)
}

overall <- function(d) {
  f <- as.formula(paste("rescue_stenting ~", paste(ps_covariates, collapse = " + ")))
  e <- fitted(glm(f, family = binomial, data = d, control = tight))
  w <- ato(e, d$rescue_stenting)
  w / mean(w)
}

is_bin <- function(x) all(x %in% c(0, 1))
sd_pooled <- function(x, t, bin) {
  v <- function(z) if (bin) mean(z) * (1 - mean(z)) else var(z)
  sqrt((v(x[t == 1]) + v(x[t == 0])) / 2)
}
wvar <- function(x, w) { v <- w / sum(w); m <- sum(v * x); sum(v * (x - m)^2) / (1 - sum(v^2)) }

balance_rows <- function(d, w, cutoff, method) {
  high <- d$stenosis_pct > cutoff
  out <- list()
  for (g in c("low", "high")) {
    r <- if (g == "high") high else !high
    t <- d$rescue_stenting[r]
    if (length(unique(t)) < 2) next
    for (c in ps_covariates) {
      x <- d[[c]][r]
      bin <- is_bin(x)
      den <- sd_pooled(x, t, bin)
      du <- mean(x[t == 1]) - mean(x[t == 0])
      dw <- weighted.mean(x[t == 1], w[r][t == 1]) - weighted.mean(x[t == 0], w[r][t == 0])
      vr <- if (bin) NA else wvar(x[t == 1], w[r][t == 1]) / wvar(x[t == 0], w[r][t == 0])
      out[[length(out) + 1]] <- data.frame(cutoff = cutoff, weights = method, subgroup = g, covariate = c,
                                           smd_unweighted = if (is.na(den)) NA else if (den > 0) du / den else 0,
                                           smd_weighted = if (is.na(den)) NA else if (den > 0) dw / den else 0,
                                           variance_ratio_weighted = vr)
    }
  }
  do.call(rbind, out)
}

effects_within <- function(d, w, cutoff) {
  d$high <- as.numeric(d$stenosis_pct > cutoff)
  d$w <- w
  out <- list()
  for (o in c("mrs_90d", "mrs_0_2")) {
    s <- d[!is.na(d[[o]]), ]
    s$y <- s[[o]]
    if (o == "mrs_90d") {
      fit <- lm(y ~ rescue_stenting * high, data = s, weights = w)
      q <- qt(0.975, fit$df.residual)
      pfun <- function(z) 2 * pt(-abs(z), fit$df.residual)
    } else {
      fit <- suppressWarnings(glm(y ~ rescue_stenting * high, family = poisson(link = "log"), data = s,
                                  weights = w, control = tight))
      q <- qnorm(0.975)
      pfun <- function(z) 2 * pnorm(-abs(z))
    }
    V <- vcovHC(fit, type = "HC0")
    b <- coef(fit)
    for (g in c("low", "high")) {
      L <- if (g == "low") c(0, 1, 0, 0) else c(0, 1, 0, 1)
      est <- sum(L * b); se <- sqrt(drop(t(L) %*% V %*% L))
      tr <- if (o == "mrs_90d") identity else exp
      out[[length(out) + 1]] <- data.frame(outcome = o, subgroup = g, estimate = tr(est),
                                           ci_lower = tr(est - q * se), ci_upper = tr(est + q * se),
                                           p_value = pfun(est / se), std_error = se,
                                           p_interaction = pfun(b[4] / sqrt(V[4, 4])))
    }
  }
  do.call(rbind, out)
}

# M-estimation: stacked (t - p) z for both subgroup models and w(gamma) x (y - x'beta)
m_estimation <- function(d, wd, cutoff) {
  Z <- wd$Z
  t <- d$rescue_stenting
  high <- as.numeric(d$stenosis_pct > cutoff)
  X <- cbind(1, t, high, t * high)
  y <- d$mrs_90d
  gamma <- c()
  for (g in c(0, 1)) {  # the coefficients of each block, from its own fit
    cols <- which(colSums(abs(Z[high == g, , drop = FALSE])) > 0)
    fit <- glm.fit(Z[high == g, cols, drop = FALSE], t[high == g], family = binomial(), control = tight)
    gamma <- c(gamma, fit$coefficients)
  }
  known <- !is.na(y)
  beta <- coef(lm(y[known] ~ X[known, -1], weights = wd$w[known]))
  psi <- function(theta) {
    k <- ncol(Z)
    p <- as.vector(plogis(Z %*% theta[1:k]))
    w <- ato(p, t)
    r <- ifelse(known, y - as.vector(X %*% theta[-(1:k)]), 0)
    cbind((t - p) * Z, X * (w * r))
  }
  theta <- c(gamma, beta)
  A <- numDeriv::jacobian(function(th) colSums(psi(th)), theta)
  B <- crossprod(psi(theta))
  V <- solve(A) %*% B %*% t(solve(A))
  idx <- (ncol(Z) + 1):length(theta)
  Vb <- V[idx, idx]
  rbind(data.frame(quantity = "low", estimate = beta[2], se_m_estimation = sqrt(Vb[2, 2])),
        data.frame(quantity = "high", estimate = beta[2] + beta[4],
                   se_m_estimation = sqrt(Vb[2, 2] + Vb[4, 4] + 2 * Vb[2, 4])),
        data.frame(quantity = "interaction", estimate = beta[4], se_m_estimation = sqrt(Vb[4, 4])))
}

for (name in names(cohorts)) {
  d <- read_sample(cohorts[[name]])
  w_all <- overall(d)
  bal <- list(); est <- list()
  for (cutoff in cutoffs) {
    bal[[length(bal) + 1]] <- balance_rows(d, w_all, cutoff, "overall")
    wd <- within(d, cutoff)
    est[[length(est) + 1]] <- data.frame(cutoff = cutoff, estimable = !is.null(wd))
    if (!is.null(wd)) bal[[length(bal) + 1]] <- balance_rows(d, wd$w, cutoff, "within")
  }
  dir <- file.path("tests/reference/expected", name)
  write.csv(do.call(rbind, bal), file.path(dir, "subgroup_balance_ATO.csv"), row.names = FALSE, na = "")
  write.csv(do.call(rbind, est), file.path(dir, "subgroup_estimable_ATO.csv"), row.names = FALSE)
  wd <- within(d, 75)
  write.csv(effects_within(d, wd$w, 75), file.path(dir, "subgroup_table2_within_ATO_HC0_75.csv"),
            row.names = FALSE, na = "")
  write.csv(m_estimation(d, wd, 75), file.path(dir, "subgroup_mestimation_within_ATO_75.csv"), row.names = FALSE)
}
writeLines(c(R.version.string, paste("sandwich", packageVersion("sandwich")),
             paste("lmtest", packageVersion("lmtest")), paste("numDeriv", packageVersion("numDeriv"))),
           "tests/reference/expected/VERSIONS_subgroups.txt")
