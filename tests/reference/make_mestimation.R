# Reference results for the M-estimation variance (propensity score estimated) and for cobalt's
# balance conventions, computed in R without the Python library.
#
# Run from the project root:   Rscript tests/reference/make_mestimation.R
# Needs: r-base-core, r-cran-sandwich, r-cran-numderiv (Debian packages). Writes
# tests/reference/expected/mestimation/*.csv; the test suite never needs R.
#
# The stacked estimating functions are written out here (logistic score; weighted outcome
# score with the weights as functions of the propensity coefficients), their Jacobian is taken
# by numerical differentiation (numDeriv::jacobian, Richardson), and the sandwich
# A^-1 B A^-T is formed over the whole stack: nothing uses the closed form of the library.

suppressPackageStartupMessages({
  library(sandwich)
  library(numDeriv)
})

out_dir <- "tests/reference/expected/mestimation"
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)

raw_weights <- function(p, t, estimand) {
  switch(estimand,
         ATO = t * (1 - p) + (1 - t) * p,
         ATE = t / p + (1 - t) / (1 - p),
         ATT = t + (1 - t) * p / (1 - p),
         ATM = pmin(p, 1 - p) / (t * p + (1 - t) * (1 - p)))
}

# psi(theta): n x (k + q); theta = (gamma, beta)
stacked <- function(theta, Z, t, X, y, estimand, family) {
  k <- ncol(Z)
  gamma <- theta[1:k]
  beta <- theta[-(1:k)]
  p <- as.vector(plogis(Z %*% gamma))
  w <- raw_weights(p, t, estimand)
  eta <- as.vector(X %*% beta)
  mu <- if (family == "gaussian") eta else exp(eta)
  r <- ifelse(is.na(y), 0, y - mu)
  cbind((t - p) * Z, X * (w * r))
}

m_vcov <- function(Z, t, X, y, estimand, family) {
  ps <- glm.fit(Z, t, family = binomial(), control = glm.control(epsilon = 1e-14, maxit = 100))
  gamma <- ps$coefficients
  p <- ps$fitted.values
  w <- raw_weights(p, t, estimand)
  known <- !is.na(y)
  fam <- if (family == "gaussian") gaussian() else poisson()
  out <- suppressWarnings(glm.fit(X[known, , drop = FALSE], y[known], weights = w[known], family = fam,
                                  control = glm.control(epsilon = 1e-14, maxit = 100)))
  beta <- out$coefficients
  theta <- c(gamma, beta)
  total <- function(th) colSums(stacked(th, Z, t, X, y, estimand, family))
  A <- numDeriv::jacobian(total, theta)
  psi <- stacked(theta, Z, t, X, y, estimand, family)
  B <- crossprod(psi)
  Ainv <- solve(A)
  V <- Ainv %*% B %*% t(Ainv)
  idx <- (ncol(Z) + 1):length(theta)
  # the same outcome model with the weights as known (HC0), for the side-by-side table
  hc0 <- if (family == "gaussian") {
    vcovHC(lm(y[known] ~ X[known, -1, drop = FALSE], weights = w[known]), type = "HC0")
  } else {
    vcovHC(suppressWarnings(glm(y[known] ~ X[known, -1, drop = FALSE], weights = w[known],
                                family = poisson())), type = "HC0")
  }
  list(beta = beta, V = V[idx, idx, drop = FALSE], hc0 = unname(hc0), jac = A)
}

contrasts <- function(fit, labels, L) {
  est <- as.vector(L %*% fit$beta)
  se_m <- sqrt(diag(L %*% fit$V %*% t(L)))
  se_r <- sqrt(diag(L %*% fit$hc0 %*% t(L)))
  data.frame(quantity = labels, estimate = est, se_m_estimation = se_m, se_hc0 = se_r)
}

# ------------------------------------------------------------------ the synthetic cohort
ps_covariates <- c("age", "sex_female", "nihss", "aspects", "premorbid_mrs", "m1_occlusion",
                   "stenosis_pct", "mtici_2b3_after_mt", "hypertension", "diabetes",
                   "atrial_fibrillation", "general_anesthesia")
d <- read.csv("data/synthetic_cohort.csv", na.strings = "", stringsAsFactors = FALSE)
d$mrs_0_2 <- ifelse(is.na(d$mrs_90d), NA, as.numeric(d$mrs_90d <= 2))
d <- d[complete.cases(d[, c("rescue_stenting", "stenosis_pct", ps_covariates)]), ]
Z <- cbind(1, as.matrix(d[, ps_covariates]))
t <- d$rescue_stenting
high <- as.numeric(d$stenosis_pct > 75)
rows <- list()
for (estimand in c("ATO", "ATE", "ATT", "ATM")) {
  for (outcome in c("mrs_90d", "mrs_0_2", "sich")) {
    family <- if (outcome == "mrs_90d") "gaussian" else "poisson"
    y <- d[[outcome]]
    overall <- m_vcov(Z, t, cbind(1, t), y, estimand, family)
    inter <- m_vcov(Z, t, cbind(1, t, high, t * high), y, estimand, family)
    part <- rbind(contrasts(overall, "overall", matrix(c(0, 1), 1)),
                  contrasts(inter, c("low", "high", "interaction"),
                            rbind(c(0, 1, 0, 0), c(0, 1, 0, 1), c(0, 0, 0, 1))))
    rows[[length(rows) + 1]] <- cbind(estimand = estimand, outcome = outcome, family = family, part)
  }
}
synthetic <- do.call(rbind, rows)
write.csv(synthetic, file.path(out_dir, "synthetic_effects.csv"), row.names = FALSE)

# continuous interaction y ~ t * stenosis (mRS, overlap weights)
s <- d$stenosis_pct
cont <- m_vcov(Z, t, cbind(1, t, s, t * s), d$mrs_90d, "ATO", "gaussian")
write.csv(data.frame(term = c("(Intercept)", "t", "stenosis", "t:stenosis"), estimate = cont$beta,
                     se_m_estimation = sqrt(diag(cont$V)), se_hc0 = sqrt(diag(cont$hc0)),
                     cov_t_interaction = cont$V[2, 4]),
          file.path(out_dir, "synthetic_continuous.csv"), row.names = FALSE)

# ------------------------------------------------------------------ lalonde (cobalt's data)
# lalonde.csv: cobalt's data/lalonde.RData written with write.csv (see lalonde/README.md)
L <- read.csv("tests/reference/lalonde/lalonde.csv", stringsAsFactors = TRUE)
Zl <- model.matrix(~ age + educ + nodegree + married + race + re74 + re75, data = L)
tl <- L$treat
fit <- m_vcov(Zl, tl, cbind(1, tl), L$re78, "ATT", "gaussian")
ps <- glm(treat ~ age + educ + nodegree + married + race + re74 + re75, data = L, family = binomial(),
          control = glm.control(epsilon = 1e-14, maxit = 100))
p <- fitted(ps)
w <- raw_weights(p, tl, "ATT")
ess <- function(v) sum(v)^2 / sum(v^2)

# cobalt's balance conventions for the ATT: s.d.denom = "treated" (SD of the treated, unweighted),
# binary covariates as raw differences in proportions, continuous ones standardised.
wmean <- function(x, v) sum(v * x) / sum(v)
L$race_black <- as.numeric(L$race == "black")
L$race_hispan <- as.numeric(L$race == "hispan")
L$race_white <- as.numeric(L$race == "white")
covs <- c("age", "educ", "nodegree", "married", "race_black", "race_hispan", "race_white", "re74", "re75")
bal <- do.call(rbind, lapply(covs, function(v) {
  x <- L[[v]]
  binary <- all(x %in% c(0, 1))
  diff_u <- mean(x[tl == 1]) - mean(x[tl == 0])
  diff_w <- wmean(x[tl == 1], w[tl == 1]) - wmean(x[tl == 0], w[tl == 0])
  denom_treated <- sd(x[tl == 1])
  denom_pooled <- sqrt((var(x[tl == 1]) + var(x[tl == 0])) / 2)
  if (binary) {
    p1 <- mean(x[tl == 1]); p0 <- mean(x[tl == 0])
    denom_treated <- sqrt(p1 * (1 - p1))
    denom_pooled <- sqrt((p1 * (1 - p1) + p0 * (1 - p0)) / 2)
  }
  data.frame(covariate = v, binary = binary, diff_unweighted = diff_u, diff_weighted = diff_w,
             sd_treated = denom_treated, sd_pooled = denom_pooled)
}))
write.csv(bal, file.path(out_dir, "lalonde_balance.csv"), row.names = FALSE)
write.csv(data.frame(
  quantity = c("att_re78", "se_m_estimation", "se_hc0", "ess_control", "ess_treated",
               "ess_control_unweighted"),
  value = c(fit$beta[2], sqrt(fit$V[2, 2]), sqrt(fit$hc0[2, 2]), ess(w[tl == 0]), ess(w[tl == 1]),
            sum(tl == 0))),
  file.path(out_dir, "lalonde_att.csv"), row.names = FALSE)

writeLines(c(R.version.string, paste("sandwich", packageVersion("sandwich")),
             paste("numDeriv", packageVersion("numDeriv"))), file.path(out_dir, "VERSIONS.txt"))
cat("written to", out_dir, "\n")
