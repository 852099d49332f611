export { default } from '../../../screens/clinician/CaseResult';
